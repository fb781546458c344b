//! Priority lanes (DESIGN §2): ten lanes, 0 lowest, 9 highest, 4 default.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// One of the ten priority lanes. 0 is the lowest, 9 the highest.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Priority(u8);

/// Why a priority value was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PriorityError {
    /// Not an integer at all (`"bulk"`, `"4.5"`, empty).
    #[error("priority must be an integer from 0 to 9, got {0:?}")]
    NotAnInteger(String),
    /// An integer outside 0–9.
    #[error("priority must be from 0 to 9, got {0}")]
    OutOfRange(i64),
}

impl Priority {
    /// The number of lanes.
    pub const COUNT: usize = 10;
    /// The lowest lane.
    pub const MIN: Priority = Priority(0);
    /// The highest lane.
    pub const MAX: Priority = Priority(9);
    /// The default lane when nothing else decides (`[queue] default_priority`).
    pub const DEFAULT: Priority = Priority(4);

    /// A lane from an integer; values outside 0–9 are refused, never clamped.
    pub fn new(value: i64) -> Result<Priority, PriorityError> {
        if (0..=9).contains(&value) {
            Ok(Priority(value as u8))
        } else {
            Err(PriorityError::OutOfRange(value))
        }
    }

    /// The lane for an RFC 6710 `MT-PRIORITY` value (−9…9): lane = 4 + ⌈p/2⌉,
    /// so −9,−8 → 0; −1,0 → 4; 9 → 9. Values outside −9…9 are refused.
    pub fn from_mt_priority(p: i64) -> Result<Priority, PriorityError> {
        if !(-9..=9).contains(&p) {
            return Err(PriorityError::OutOfRange(p));
        }
        // ceil(p / 2) for negative and positive p alike.
        let half = if p >= 0 { (p + 1) / 2 } else { -((-p) / 2) };
        Priority::new(4 + half)
    }

    /// The lane number 0–9.
    pub fn get(self) -> u8 {
        self.0
    }

    /// The lane as an index into per-lane arrays.
    pub fn index(self) -> usize {
        self.0 as usize
    }

    /// All lanes, highest first (the order the scheduler serves them).
    pub fn all_desc() -> impl Iterator<Item = Priority> {
        (0..10u8).rev().map(Priority)
    }

    /// All lanes, lowest first.
    pub fn all() -> impl Iterator<Item = Priority> {
        (0..10u8).map(Priority)
    }
}

impl Default for Priority {
    fn default() -> Self {
        Priority::DEFAULT
    }
}

impl fmt::Display for Priority {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

impl FromStr for Priority {
    type Err = PriorityError;

    /// Parses a header or query value such as `" 7 "`. Leading `+` and
    /// surrounding whitespace are accepted; anything else that is not an
    /// integer is refused.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let t = s.trim();
        let digits = t.strip_prefix('+').unwrap_or(t);
        if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit() || b == b'-') {
            return Err(PriorityError::NotAnInteger(s.to_string()));
        }
        let v: i64 = digits
            .parse()
            .map_err(|_| PriorityError::NotAnInteger(s.to_string()))?;
        Priority::new(v)
    }
}

impl Serialize for Priority {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u8(self.0)
    }
}

impl<'de> Deserialize<'de> for Priority {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let v = i64::deserialize(d)?;
        Priority::new(v).map_err(serde::de::Error::custom)
    }
}

/// A set of lanes, written in configuration as `"7-9"`, `"0-4"`, `"5"` or
/// `"0,2,4-6"`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub struct LaneSet(u16);

impl LaneSet {
    /// Every lane.
    pub const ALL: LaneSet = LaneSet(0x3ff);

    /// Lanes `lo..=hi`.
    pub fn range(lo: Priority, hi: Priority) -> LaneSet {
        let mut bits = 0u16;
        for l in lo.get()..=hi.get() {
            bits |= 1 << l;
        }
        LaneSet(bits)
    }

    /// The set from its bits (bit n = lane n).
    pub fn from_bits(bits: u16) -> LaneSet {
        LaneSet(bits & 0x3ff)
    }

    /// The raw bit set (bit n = lane n).
    pub fn bits(self) -> u16 {
        self.0
    }

    /// Whether `p` is in the set.
    pub fn contains(self, p: Priority) -> bool {
        self.0 & (1 << p.get()) != 0
    }

    /// Whether the set is empty.
    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// Whether the two sets share a lane.
    pub fn overlaps(self, other: LaneSet) -> bool {
        self.0 & other.0 != 0
    }

    /// The lanes of the set, highest first.
    pub fn iter_desc(self) -> impl Iterator<Item = Priority> {
        Priority::all_desc().filter(move |p| self.contains(*p))
    }
}

impl FromStr for LaneSet {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let mut bits = 0u16;
        for part in s.split(',') {
            let part = part.trim();
            let (lo, hi) = match part.split_once('-') {
                Some((a, b)) => (a.trim(), b.trim()),
                None => (part, part),
            };
            let lo: Priority = lo.parse().map_err(|e| format!("lanes {s:?}: {e}"))?;
            let hi: Priority = hi.parse().map_err(|e| format!("lanes {s:?}: {e}"))?;
            if lo > hi {
                return Err(format!("lanes {s:?}: range {lo}-{hi} is backwards"));
            }
            bits |= LaneSet::range(lo, hi).0;
        }
        Ok(LaneSet(bits))
    }
}

impl fmt::Display for LaneSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let lanes: Vec<String> = Priority::all()
            .filter(|p| self.contains(*p))
            .map(|p| p.to_string())
            .collect();
        write!(f, "{}", lanes.join(","))
    }
}

impl<'de> Deserialize<'de> for LaneSet {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use crate::config::units::IntOrStr as Raw;
        match Raw::deserialize(d)? {
            Raw::Int(i) => {
                let p = Priority::new(i).map_err(serde::de::Error::custom)?;
                Ok(LaneSet::range(p, p))
            }
            Raw::Str(s) => s.parse().map_err(serde::de::Error::custom),
        }
    }
}

impl Serialize for LaneSet {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mt_priority_mapping_matches_the_table() {
        let table = [
            (-9, 0),
            (-8, 0),
            (-7, 1),
            (-6, 1),
            (-5, 2),
            (-4, 2),
            (-3, 3),
            (-2, 3),
            (-1, 4),
            (0, 4),
            (1, 5),
            (2, 5),
            (3, 6),
            (4, 6),
            (5, 7),
            (6, 7),
            (7, 8),
            (8, 8),
            (9, 9),
        ];
        for (p, lane) in table {
            assert_eq!(Priority::from_mt_priority(p).unwrap().get(), lane, "p={p}");
        }
        assert!(Priority::from_mt_priority(10).is_err());
        assert!(Priority::from_mt_priority(-10).is_err());
    }

    #[test]
    fn parse_refuses_rather_than_clamps() {
        assert_eq!(" 7 ".parse::<Priority>().unwrap().get(), 7);
        assert_eq!("+3".parse::<Priority>().unwrap().get(), 3);
        assert_eq!("10".parse::<Priority>(), Err(PriorityError::OutOfRange(10)));
        assert_eq!("-1".parse::<Priority>(), Err(PriorityError::OutOfRange(-1)));
        assert!(matches!(
            "bulk".parse::<Priority>(),
            Err(PriorityError::NotAnInteger(_))
        ));
        assert!(matches!(
            "4.5".parse::<Priority>(),
            Err(PriorityError::NotAnInteger(_))
        ));
        assert!(matches!(
            "".parse::<Priority>(),
            Err(PriorityError::NotAnInteger(_))
        ));
    }

    #[test]
    fn lane_sets() {
        let s: LaneSet = "7-9".parse().unwrap();
        assert!(s.contains(Priority::new(7).unwrap()));
        assert!(!s.contains(Priority::new(6).unwrap()));
        let s: LaneSet = "0,2,4-5".parse().unwrap();
        assert_eq!(s.to_string(), "0,2,4,5");
        assert!("9-7".parse::<LaneSet>().is_err());
        assert!("3-12".parse::<LaneSet>().is_err());
    }
}
