//! The SMTP verbs other than the content and AUTH exchanges: EHLO/HELO,
//! MAIL, RCPT, DATA/BDAT (their start), RSET, NOOP, VRFY, HELP, QUIT,
//! STARTTLS (RFC 5321 §4.1.1, RFC 3207, RFC 3030, RFC 3461, RFC 6710).

use std::time::Instant;

use laneway_common::Reply;
use laneway_common::config::ListenerTls;
use laneway_common::envelope::{BodyType, DsnRet, Notify, Recipient, domain_of};
use laneway_common::priority::Priority;
use smtp_proto::{
    MAIL_BODY_8BITMIME, MAIL_BODY_BINARYMIME, MAIL_BY_NOTIFY, MAIL_BY_RETURN, MAIL_BY_TRACE,
    MAIL_CONPERM, MAIL_REQUIRETLS, MAIL_RET_FULL, MAIL_RET_HDRS, MAIL_SMTPUTF8, MailFrom,
    RCPT_CONNEG, RCPT_NOTIFY_DELAY, RCPT_NOTIFY_FAILURE, RCPT_NOTIFY_NEVER, RCPT_NOTIFY_SUCCESS,
    RcptTo, Request,
};

use super::state::{MailParams, Transaction};
use super::{Flow, Mode, Session, starts_with_ci};
use crate::content::{ContentLimits, ContentReader};
use crate::policy;

impl Session {
    /// Handles one complete command line.
    pub(super) async fn command(&mut self, line: &[u8]) -> Option<Flow> {
        if line.contains(&0) {
            self.reply(Reply::new(501, (5, 5, 2), "NUL character in command"));
            return None;
        }
        if std::str::from_utf8(line).is_err() {
            let address = starts_with_ci(line, b"MAIL") || starts_with_ci(line, b"RCPT");
            self.reply(if address {
                Reply::new(553, (5, 6, 7), "Address is not valid UTF-8 (RFC 6531)")
            } else {
                Reply::new(500, (5, 5, 2), "Command is not valid UTF-8")
            });
            return None;
        }
        let req = match Request::parse(&mut line.iter()) {
            Ok(r) => r.into_owned(),
            Err(e) => {
                let r = parse_error(&e, line);
                self.reply(r);
                return None;
            }
        };
        match req {
            Request::Ehlo { host } => self.ehlo(host, true),
            Request::Helo { host } => self.ehlo(host, false),
            Request::Mail { from } => return self.mail(from, line),
            Request::Rcpt { to } => self.rcpt(to, line).await,
            Request::Data => self.data_start(),
            Request::Bdat {
                chunk_size,
                is_last,
            } => self.bdat_start(chunk_size, is_last).await,
            Request::Rset => {
                self.tx = None;
                self.reply(Reply::new(250, (2, 0, 0), "Ok"));
            }
            Request::Noop { .. } => self.reply(Reply::new(250, (2, 0, 0), "Ok")),
            Request::Vrfy { .. } => self.reply(Reply::new(
                252,
                (2, 5, 0),
                "Cannot VRFY user, but will accept message and attempt delivery",
            )),
            Request::Help { .. } => self.reply(Reply::new(
                214,
                (2, 0, 0),
                "Laneway: HELO EHLO MAIL RCPT DATA BDAT RSET NOOP VRFY QUIT STARTTLS AUTH",
            )),
            Request::Quit => {
                self.reply(Reply::new(221, (2, 0, 0), "Bye"));
                return Some(Flow::Close);
            }
            Request::StartTls => return self.starttls(),
            Request::Auth {
                mechanism,
                initial_response,
            } => return self.auth_start(mechanism, initial_response).await,
            Request::Expn { .. }
            | Request::Etrn { .. }
            | Request::Atrn { .. }
            | Request::Burl { .. }
            | Request::Lhlo { .. } => {
                self.reply(Reply::new(502, (5, 5, 1), "Command not implemented"))
            }
        }
        None
    }

    /// Whether the client may speak for its senders: from a trusted network
    /// or authenticated.
    pub(super) fn is_trusted(&self) -> bool {
        self.conn.auth_user.is_some()
            || self
                .shared
                .settings
                .load()
                .relay
                .is_trusted(self.conn.peer.ip())
    }

    fn tls_mode(&self) -> ListenerTls {
        self.listener
            .tls_mode(self.shared.settings.load().tls.is_some())
    }

    fn ehlo(&mut self, host: String, esmtp: bool) {
        self.tx = None;
        self.conn.helo = Some(host);
        self.conn.esmtp = esmtp;
        let settings = self.shared.settings.load();
        let hostname = settings.hostname.clone();
        if !esmtp {
            self.reply(Reply::bare(250, hostname));
            return;
        }
        let mut lines = vec![
            hostname,
            "PIPELINING".to_string(),
            format!("SIZE {}", self.listener.max_message_size),
            "8BITMIME".into(),
            "SMTPUTF8".into(),
            "ENHANCEDSTATUSCODES".into(),
            "DSN".into(),
            "CHUNKING".into(),
        ];
        if self.conn.tls.is_none()
            && self.tls_mode() == ListenerTls::Starttls
            && settings.tls.is_some()
        {
            lines.push("STARTTLS".into());
        }
        if self.conn.tls.is_some() && !settings.users.is_empty() {
            lines.push("AUTH PLAIN LOGIN".into());
        }
        // RFC 8689 §4.1: only offered once the session is encrypted.
        if self.conn.tls.is_some() {
            lines.push("REQUIRETLS".into());
        }
        if self.listener.trust_priority {
            lines.push("MT-PRIORITY MIXER".into());
        }
        self.reply(Reply {
            code: 250,
            esc: None,
            lines,
        });
    }

    fn mail(&mut self, from: MailFrom<String>, line: &[u8]) -> Option<Flow> {
        if self.conn.helo.is_none() {
            self.reply(Reply::new(503, (5, 5, 1), "Send EHLO or HELO first"));
            return None;
        }
        if self.tx.is_some() {
            self.reply(Reply::new(503, (5, 5, 1), "Nested MAIL command"));
            return None;
        }
        if self.listener.require_auth && self.conn.auth_user.is_none() {
            self.reply(Reply::new(530, (5, 7, 0), "Authentication required"));
            return None;
        }
        if let Err(e) = self.shared.ingest.admit() {
            let r = e.reply();
            let fatal = r.code == 421;
            self.reply(r);
            return fatal.then_some(Flow::Close);
        }
        let require_tls = from.flags & MAIL_REQUIRETLS != 0;
        if require_tls && self.conn.tls.is_none() {
            self.reply(Reply::new(
                530,
                (5, 7, 10),
                "REQUIRETLS needs an encrypted session; use STARTTLS first",
            ));
            return None;
        }
        let unsupported = MAIL_CONPERM | MAIL_BY_NOTIFY | MAIL_BY_RETURN | MAIL_BY_TRACE;
        if from.flags & unsupported != 0
            || from.trans_id.is_some()
            || from.solicit.is_some()
            || from.mtrk.is_some()
            || from.hold_for != 0
            || from.hold_until != 0
            || from.by != 0
        {
            self.reply(Reply::new(555, (5, 5, 4), "Unsupported MAIL parameter"));
            return None;
        }
        if from.flags & MAIL_BODY_BINARYMIME != 0 {
            self.reply(Reply::new(
                555,
                (5, 5, 4),
                "BODY=BINARYMIME is not supported",
            ));
            return None;
        }
        if from.size as u64 > self.listener.max_message_size {
            self.reply(Reply::new(
                552,
                (5, 3, 4),
                "Message size exceeds fixed maximum message size",
            ));
            return None;
        }
        let raw = policy::raw_path(line).unwrap_or_default();
        if let Err(r) = policy::check_lengths(&from.address, &raw) {
            self.reply(r);
            return None;
        }
        let smtputf8 = from.flags & MAIL_SMTPUTF8 != 0;
        if policy::needs_smtputf8(&from.address) && !smtputf8 {
            self.reply(Reply::new(
                553,
                (5, 6, 7),
                "Non-ASCII address requires the SMTPUTF8 parameter",
            ));
            return None;
        }
        if let Some(user) = &self.conn.auth_user
            && !from.address.is_empty()
        {
            let settings = self.shared.settings.load();
            let allowed = settings
                .users
                .get(user)
                .and_then(|u| u.allowed_from_domains.as_deref());
            if !laneway_common::domain::may_send_as(allowed, &from.address) {
                let d = domain_of(&from.address);
                self.reply(Reply::new(
                    550,
                    (5, 7, 1),
                    format!("Sender domain {d} is not allowed for user {user}"),
                ));
                return None;
            }
        }
        let mt_priority = if has_param(line, b"MT-PRIORITY=") {
            if !self.listener.trust_priority {
                self.reply(Reply::new(
                    555,
                    (5, 5, 4),
                    "MT-PRIORITY is not supported here",
                ));
                return None;
            }
            match Priority::from_mt_priority(from.mt_priority) {
                Ok(p) => Some(p),
                Err(e) => {
                    self.reply(Reply::new(
                        501,
                        (5, 5, 4),
                        format!("Invalid MT-PRIORITY: {e}"),
                    ));
                    return None;
                }
            }
        } else {
            None
        };
        let params = MailParams {
            smtputf8,
            body: if from.flags & MAIL_BODY_8BITMIME != 0 {
                BodyType::EightBitMime
            } else {
                BodyType::SevenBit
            },
            ret: if from.flags & MAIL_RET_FULL != 0 {
                Some(DsnRet::Full)
            } else if from.flags & MAIL_RET_HDRS != 0 {
                Some(DsnRet::Hdrs)
            } else {
                None
            },
            envid: from.env_id.clone(),
            mt_priority,
            require_tls,
        };
        let sender = policy::requote(&from.address, &raw);
        self.reply(Reply::new(250, (2, 1, 0), format!("Sender <{sender}> Ok")));
        self.tx = Some(Transaction {
            sender,
            params,
            recipients: Vec::new(),
            started: Instant::now(),
            data_deadline: None,
            bdat: None,
            _activity: self.shared.lifecycle.activity(),
        });
        None
    }

    async fn rcpt(&mut self, to: RcptTo<String>, line: &[u8]) {
        let Some(tx) = &self.tx else {
            self.reply(Reply::new(503, (5, 5, 1), "Need MAIL command first"));
            return;
        };
        if tx.recipients.len() >= self.listener.max_recipients {
            self.reply(Reply::new(452, (4, 5, 3), "Too many recipients"));
            return;
        }
        let smtputf8 = tx.params.smtputf8;
        let sender = tx.sender.clone();
        let raw = policy::raw_path(line).unwrap_or_default();
        let settings = self.shared.settings.load_full();
        let mut address = to.address.clone();
        let mut postmaster = false;
        if address.is_empty() {
            if raw.text.eq_ignore_ascii_case("postmaster") {
                // RFC 5321 §4.5.1: always accepted; we have no local
                // mailboxes, so it goes to postmaster at our own name.
                address = format!("postmaster@{}", settings.hostname);
                postmaster = true;
            } else {
                self.reply(Reply::new(501, (5, 1, 3), "Bad recipient address syntax"));
                return;
            }
        }
        if let Err(r) = policy::check_lengths(&address, &raw) {
            self.reply(r);
            return;
        }
        if policy::needs_smtputf8(&address) && !smtputf8 {
            self.reply(Reply::new(
                553,
                (5, 6, 7),
                "Non-ASCII address requires the SMTPUTF8 parameter",
            ));
            return;
        }
        if to.rrvs != 0 || to.flags & RCPT_CONNEG != 0 {
            self.reply(Reply::new(555, (5, 5, 4), "Unsupported RCPT parameter"));
            return;
        }
        if !postmaster && !self.is_trusted() {
            let domain = domain_of(&address);
            if policy::is_routing_shape(&address, &raw) || !settings.is_local_domain(&domain) {
                tracing::info!(
                    listener = %self.conn.listener,
                    peer = %self.conn.peer.ip(),
                    rcpt = %raw.text,
                    "relay access denied"
                );
                self.reply(Reply::new(550, (5, 7, 1), "Relay access denied"));
                return;
            }
        }
        let address = if postmaster {
            address
        } else {
            policy::requote(&address, &raw)
        };
        if let laneway_common::RecipientVerdict::Refuse(r) =
            self.shared.ingest.check_recipient(&sender, &address).await
        {
            self.reply(r);
            return;
        }
        let f = to.flags;
        let notify = if f
            & (RCPT_NOTIFY_NEVER | RCPT_NOTIFY_SUCCESS | RCPT_NOTIFY_FAILURE | RCPT_NOTIFY_DELAY)
            != 0
        {
            Notify {
                never: f & RCPT_NOTIFY_NEVER != 0,
                success: f & RCPT_NOTIFY_SUCCESS != 0,
                failure: f & RCPT_NOTIFY_FAILURE != 0,
                delay: f & RCPT_NOTIFY_DELAY != 0,
                explicit: true,
            }
        } else {
            Notify::default()
        };
        let reply = Reply::new(250, (2, 1, 5), format!("Recipient <{address}> Ok"));
        if let Some(tx) = self.tx.as_mut() {
            tx.recipients.push(Recipient {
                address,
                orcpt: to.orcpt.map(|o| format!("rfc822;{o}")),
                notify,
            });
        }
        self.reply(reply);
    }

    pub(super) fn content_limits(&self) -> ContentLimits {
        ContentLimits::new(self.listener.max_message_size, self.listener.bare_lf)
    }

    /// A reason to refuse DATA/BDAT now, if any (RFC 5321 §3.3, RFC 3030 §2).
    fn content_refusal(&self, bdat: bool) -> Option<Reply> {
        match &self.tx {
            None => Some(Reply::new(503, (5, 5, 1), "Need MAIL command first")),
            Some(tx) if tx.recipients.is_empty() => {
                Some(Reply::new(554, (5, 5, 1), "No valid recipients"))
            }
            Some(tx) if !bdat && tx.bdat.is_some() => {
                Some(Reply::new(503, (5, 5, 1), "DATA not allowed after BDAT"))
            }
            _ => None,
        }
    }

    /// Starts the data deadline (once per transaction: BDAT chunks share it).
    fn start_data_clock(&mut self) {
        let timeout = self.listener.data_timeout;
        if let Some(tx) = self.tx.as_mut()
            && tx.data_deadline.is_none()
        {
            tx.data_deadline = Some(tokio::time::Instant::now() + timeout);
        }
    }

    fn data_start(&mut self) {
        if let Some(r) = self.content_refusal(false) {
            self.reply(r);
            return;
        }
        self.reply(Reply::bare(354, "End data with <CR><LF>.<CR><LF>"));
        self.start_data_clock();
        self.mode = Mode::Data(ContentReader::data(self.content_limits()), Vec::new());
    }

    async fn bdat_start(&mut self, size: usize, last: bool) {
        let refuse = self.content_refusal(true);
        if refuse.is_none() {
            self.start_data_clock();
            let limits = self.content_limits();
            if let Some(tx) = self.tx.as_mut()
                && tx.bdat.is_none()
            {
                tx.bdat = Some((ContentReader::bdat(limits), Vec::new()));
            }
        }
        if size == 0 {
            self.end_of_chunk(last, refuse).await;
        } else {
            self.mode = Mode::Bdat {
                remaining: size,
                last,
                refuse,
            };
        }
    }

    fn starttls(&mut self) -> Option<Flow> {
        let settings = self.shared.settings.load();
        if self.conn.tls.is_some() {
            self.reply(Reply::new(503, (5, 5, 1), "TLS already active"));
            return None;
        }
        if self.tls_mode() != ListenerTls::Starttls || settings.tls.is_none() {
            self.reply(Reply::new(502, (5, 5, 1), "STARTTLS not available"));
            return None;
        }
        // CVE-2011-0411: anything pipelined after STARTTLS was sent in
        // plaintext and must not be processed after the handshake.
        self.pos = self.inbuf.len();
        self.tx = None;
        self.reply(Reply::new(220, (2, 0, 0), "Ready to start TLS"));
        Some(Flow::StartTls)
    }
}

/// Whether a MAIL/RCPT line carries a parameter (case-insensitive).
fn has_param(line: &[u8], name: &[u8]) -> bool {
    line.windows(name.len())
        .any(|w| w.eq_ignore_ascii_case(name))
}

/// The reply for a line smtp-proto could not parse.
fn parse_error(e: &smtp_proto::Error, line: &[u8]) -> Reply {
    use smtp_proto::Error as E;
    match e {
        E::UnknownCommand => Reply::new(500, (5, 5, 2), "Command unrecognized"),
        E::InvalidSenderAddress => Reply::new(501, (5, 1, 7), "Bad sender address syntax"),
        E::InvalidRecipientAddress => Reply::new(501, (5, 1, 3), "Bad recipient address syntax"),
        E::SyntaxError { syntax } => Reply::new(501, (5, 5, 4), format!("Syntax: {syntax}")),
        E::InvalidParameter { param } => {
            Reply::new(501, (5, 5, 4), format!("Invalid {param} parameter"))
        }
        E::UnsupportedParameter { param } => {
            let p: String = param.chars().take(64).collect();
            Reply::new(555, (5, 5, 4), format!("Unsupported parameter {p}"))
        }
        _ => {
            let _ = line;
            Reply::new(500, (5, 5, 2), "Syntax error")
        }
    }
}
