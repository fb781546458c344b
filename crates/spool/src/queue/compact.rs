//! The compact forms the index keeps a queued message in: a recipient
//! domain as a 4-byte [`DomainId`] (not a 16-byte `Arc<str>`), a short
//! address in place ([`Addr`], not a heap allocation of its own), and a
//! ticket in 16 bytes ([`TicketSlot`]), and the entries in a slab
//! ([`Entries`]). Together they took a single-recipient message from 279
//! to about 190 bytes: 85 MiB less with a million queued (issue 17's
//! memory target; the `queue_memory` example measures it).

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use laneway_common::MessageId;

use super::{Domain, Entry};

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

/// Slabs smaller than this are never compacted (it would gain little).
const COMPACT_FROM: usize = 4096;

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

/// The queued messages by id, in id order: the entries in one slab (no
/// allocation each, so no chunk header each) and the order in a map of
/// 4-byte slab indexes (a leaf of the map holds 12 bytes per message where
/// it held 16). A freed slot is reused; once three quarters of a large
/// slab are free it is compacted, so a drained backlog gives its memory
/// back.
#[derive(Debug, Default)]
pub(super) struct Entries {
    index: BTreeMap<MessageId, u32>,
    slab: Vec<Option<Entry>>,
    free: Vec<u32>,
}

impl Entries {
    pub(super) fn len(&self) -> usize {
        self.index.len()
    }

    pub(super) fn contains_key(&self, id: &MessageId) -> bool {
        self.index.contains_key(id)
    }

    pub(super) fn get(&self, id: &MessageId) -> Option<&Entry> {
        let i = *self.index.get(id)?;
        self.slab[i as usize].as_ref()
    }

    pub(super) fn get_mut(&mut self, id: &MessageId) -> Option<&mut Entry> {
        let i = *self.index.get(id)?;
        self.slab[i as usize].as_mut()
    }

    /// Adds (or replaces) the entry of `id`.
    pub(super) fn insert(&mut self, id: MessageId, e: Entry) {
        if let Some(&i) = self.index.get(&id) {
            self.slab[i as usize] = Some(e);
            return;
        }
        let i = match self.free.pop() {
            Some(i) => {
                self.slab[i as usize] = Some(e);
                i
            }
            None => {
                self.slab.push(Some(e));
                u32::try_from(self.slab.len() - 1).expect("fewer than 2^32 queued messages")
            }
        };
        self.index.insert(id, i);
    }

    pub(super) fn remove(&mut self, id: &MessageId) -> Option<Entry> {
        let i = self.index.remove(id)?;
        self.free.push(i);
        let e = self.slab[i as usize].take();
        if self.slab.len() >= COMPACT_FROM && self.index.len() < self.slab.len() / 4 {
            self.compact();
        }
        e
    }

    /// Moves the entries to a slab of their own size (in id order), so
    /// that the old one is freed. Amortised: it follows the removal of
    /// three quarters of the slab.
    fn compact(&mut self) {
        let mut slab = Vec::with_capacity(self.index.len());
        for i in self.index.values_mut() {
            slab.push(self.slab[*i as usize].take());
            *i = u32::try_from(slab.len() - 1).expect("fewer than 2^32 queued messages");
        }
        self.slab = slab;
        self.free = Vec::new();
    }

    /// The entries from `start` on (all without), in id order.
    pub(super) fn range(
        &self,
        start: Option<MessageId>,
    ) -> impl Iterator<Item = (&MessageId, &Entry)> + '_ {
        let ids = match start {
            Some(s) => self.index.range(s..),
            None => self.index.range(..),
        };
        ids.filter_map(|(id, &i)| Some((id, self.slab[i as usize].as_ref()?)))
    }

    pub(super) fn iter(&self) -> impl Iterator<Item = (&MessageId, &Entry)> + '_ {
        self.range(None)
    }

    /// The entries in no particular order.
    pub(super) fn values(&self) -> impl Iterator<Item = &Entry> + '_ {
        self.slab.iter().flatten()
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
            "ü@abcdefghijklmnop.de",
            "ü@abcdefghijklmnopq.de",
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

    #[test]
    fn entries_keep_id_order_and_reuse_freed_slots() {
        fn entry(size: u64) -> Entry {
            Entry {
                lane: laneway_common::Priority::DEFAULT,
                queued_at_ms: 0,
                sender: Arc::from(""),
                rcpts: smallvec::SmallVec::new(),
                attempts: 0,
                size,
                delay_warned: false,
                tickets: smallvec::SmallVec::new(),
                moving: false,
                deleted: false,
                readers: 0,
                extra: None,
            }
        }
        let id = MessageId::from_u64;
        let mut es = Entries::default();
        for n in [5, 1, 3] {
            es.insert(id(n), entry(n));
        }
        let order: Vec<u64> = es.iter().map(|(i, e)| i.as_u64() * 100 + e.size).collect();
        assert_eq!(order, [101, 303, 505]);
        assert_eq!(es.remove(&id(3)).map(|e| e.size), Some(3));
        assert!(es.remove(&id(3)).is_none(), "gone once removed");
        es.insert(id(4), entry(4));
        assert_eq!(es.slab.len(), 3, "the freed slot was reused");
        es.insert(id(4), entry(44));
        assert_eq!(
            es.get(&id(4)).map(|e| e.size),
            Some(44),
            "replaced in place"
        );
        assert_eq!(es.len(), 3);
        let from: Vec<u64> = es.range(Some(id(2))).map(|(i, _)| i.as_u64()).collect();
        assert_eq!(from, [4, 5]);
        assert_eq!(es.values().count(), 3);
        assert!(es.contains_key(&id(1)) && !es.contains_key(&id(3)));
        if let Some(e) = es.get_mut(&id(1)) {
            e.size = 11;
        }
        assert_eq!(es.get(&id(1)).map(|e| e.size), Some(11));

        // a drained backlog gives its slab back
        let mut es = Entries::default();
        let n = COMPACT_FROM as u64 + 1000;
        for i in 0..n {
            es.insert(id(i), entry(i));
        }
        for i in 0..n - 1200 {
            assert_eq!(es.remove(&id(i)).map(|e| e.size), Some(i));
        }
        assert!(
            es.slab.len() < n as usize / 4,
            "compacted: {}",
            es.slab.len()
        );
        let left: Vec<(u64, u64)> = es.iter().map(|(i, e)| (i.as_u64(), e.size)).collect();
        let want: Vec<(u64, u64)> = (n - 1200..n).map(|i| (i, i)).collect();
        assert_eq!(left, want, "every entry kept, in id order, under its id");
        es.insert(id(n), entry(n));
        assert_eq!(es.get(&id(n)).map(|e| e.size), Some(n));
        assert_eq!(es.len(), 1201);
    }
}
