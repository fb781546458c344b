//! The compact forms the index keeps a queued message in: a recipient
//! domain as a 4-byte [`DomainId`] (not a 16-byte `Arc<str>`), a short
//! address in place ([`Addr`], not a heap allocation of its own), and a
//! ticket in 16 bytes ([`TicketSlot`]). With a million messages queued these
//! are ~64 bytes per message, 60 MiB (issue 17's memory target).

use std::collections::HashMap;
use std::sync::Arc;

use super::Domain;

/// A recipient domain, by its place in [`Domains`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(super) struct DomainId(u32);

/// Every recipient domain seen since start-up. None is ever removed (as
/// before ids: the map never shrank), so an id stays valid for the life of
/// the process.
#[derive(Debug, Default)]
pub(super) struct Domains {
    ids: HashMap<Arc<str>, DomainId>,
    list: Vec<Domain>,
}

impl Domains {
    /// The id of `name`, added if new.
    pub(super) fn intern(&mut self, name: &str) -> DomainId {
        if let Some(id) = self.ids.get(name) {
            return *id;
        }
        let id = DomainId(u32::try_from(self.list.len()).expect("fewer than 2^32 domains"));
        let name: Arc<str> = Arc::from(name);
        self.ids.insert(name.clone(), id);
        self.list.push(Domain {
            name,
            ..Domain::default()
        });
        id
    }

    /// The id of a known domain.
    pub(super) fn find(&self, name: &str) -> Option<DomainId> {
        self.ids.get(name).copied()
    }

    pub(super) fn get(&self, id: DomainId) -> &Domain {
        &self.list[id.0 as usize]
    }

    pub(super) fn get_mut(&mut self, id: DomainId) -> &mut Domain {
        &mut self.list[id.0 as usize]
    }

    pub(super) fn name(&self, id: DomainId) -> &Arc<str> {
        &self.get(id).name
    }

    pub(super) fn iter(&self) -> std::slice::Iter<'_, Domain> {
        self.list.iter()
    }

    pub(super) fn iter_mut(&mut self) -> std::slice::IterMut<'_, Domain> {
        self.list.iter_mut()
    }
}

/// Bytes an [`Addr`] holds in place.
const INLINE: usize = 22;

/// An address: in place up to 22 bytes (most are), else boxed. 24 bytes
/// either way, where a `Box<str>` is 16 plus a 32-byte allocation.
#[derive(Clone, PartialEq, Eq)]
pub(super) enum Addr {
    Inline { len: u8, bytes: [u8; INLINE] },
    Heap(Box<str>),
}

impl Addr {
    pub(super) fn new(s: &str) -> Addr {
        if s.len() <= INLINE {
            let mut bytes = [0; INLINE];
            bytes[..s.len()].copy_from_slice(s.as_bytes());
            Addr::Inline {
                len: s.len() as u8,
                bytes,
            }
        } else {
            Addr::Heap(s.into())
        }
    }

    pub(super) fn as_str(&self) -> &str {
        match self {
            // written from a &str, cut at its length: always whole UTF-8
            Addr::Inline { len, bytes } => {
                std::str::from_utf8(&bytes[..*len as usize]).unwrap_or_default()
            }
            Addr::Heap(s) => s,
        }
    }
}

impl std::ops::Deref for Addr {
    type Target = str;
    fn deref(&self) -> &str {
        self.as_str()
    }
}

impl std::fmt::Debug for Addr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Debug::fmt(self.as_str(), f)
    }
}

/// Where a message stands at one of its domains.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Ticket {
    /// Deferred until then (ms since the epoch), on the timer.
    Timer(u64),
    /// Waiting for the domain to be resolved.
    Waiting,
    /// In its site's lane.
    Ready,
}

/// A message's ticket at one domain, in 16 bytes: a `(DomainId, Ticket)`
/// pair takes 24.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct TicketSlot {
    pub(super) domain: DomainId,
    kind: u8,
    due: u64,
}

impl TicketSlot {
    pub(super) fn new(domain: DomainId, t: Ticket) -> TicketSlot {
        let (kind, due) = match t {
            Ticket::Timer(at) => (0, at),
            Ticket::Waiting => (1, 0),
            Ticket::Ready => (2, 0),
        };
        TicketSlot { domain, kind, due }
    }

    pub(super) fn ticket(&self) -> Ticket {
        match self.kind {
            0 => Ticket::Timer(self.due),
            1 => Ticket::Waiting,
            _ => Ticket::Ready,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_short_and_long_read_back_as_given() {
        for s in [
            "",
            "a@b.example",
            "r123456@bench.test",
            "exactly22bytes@abc.dev",
            "exactly23bytes@abcd.dev",
            "jörg.müller@例え.テスト",
            "a.much.longer.address.than.fits@example.com",
        ] {
            let a = Addr::new(s);
            assert_eq!(a.as_str(), s);
            assert_eq!(matches!(a, Addr::Inline { .. }), s.len() <= INLINE, "{s}");
        }
        assert_eq!(std::mem::size_of::<Addr>(), 24);
    }

    #[test]
    fn a_slot_keeps_its_ticket_in_sixteen_bytes() {
        let d = DomainId(7);
        for t in [
            Ticket::Timer(0),
            Ticket::Timer(u64::MAX),
            Ticket::Waiting,
            Ticket::Ready,
        ] {
            let s = TicketSlot::new(d, t);
            assert_eq!((s.domain, s.ticket()), (d, t));
        }
        assert_eq!(std::mem::size_of::<TicketSlot>(), 16);
    }

    #[test]
    fn a_domain_keeps_its_id_and_name() {
        let mut ds = Domains::default();
        let a = ds.intern("a.example");
        let b = ds.intern("b.example");
        assert_ne!(a, b);
        assert_eq!(ds.intern("a.example"), a);
        assert_eq!(&**ds.name(b), "b.example");
        assert_eq!(ds.find("b.example"), Some(b));
        assert_eq!(ds.find("c.example"), None);
        assert_eq!(ds.iter().count(), 2);
    }
}
