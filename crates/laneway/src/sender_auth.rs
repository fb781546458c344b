//! The delivery hooks over sender authentication: outbound asks for each
//! transaction's envelope sender (VERP) and reports permanent failures;
//! `laneway_auth::SenderAuth` decides.

use std::sync::Arc;

use laneway_auth::SenderAuth;
use laneway_common::{Envelope, MessageId, Outcome, Priority};
use laneway_outbound::Hooks;

/// [`Hooks`] for the dispatcher.
pub struct AuthHooks(pub Arc<SenderAuth>);

impl Hooks for AuthHooks {
    fn transactions(
        &self,
        id: MessageId,
        lane: Priority,
        env: &Envelope,
        rcpts: &[(usize, String)],
    ) -> Vec<(String, Vec<usize>)> {
        let a = &self.0;
        let t = a.policy().transactions(id, lane, env, rcpts, a.now_ms());
        a.record_tokens(t.tokens);
        t.senders
    }

    fn failed(&self, sender: &str, rcpt: &str, _lane: Priority, outcome: &Outcome) {
        self.0.failed(sender, rcpt, outcome);
    }
}
