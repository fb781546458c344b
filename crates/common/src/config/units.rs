//! Units in configuration values: durations as humantime strings (`"5m"`,
//! `"1s"`, `"4h 30m"`), sizes as integers of bytes or strings with a unit
//! (`"25MiB"`, `"10MB"`), rates as `"50/s"`.

use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Deserializer, Serializer};

/// Deserializes a humantime duration string (no minimum: `"1s"` and `"10ms"` are valid).
pub fn duration<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    let s = String::deserialize(d)?;
    humantime::parse_duration(&s)
        .map_err(|e| serde::de::Error::custom(format!("invalid duration {s:?}: {e}")))
}

/// Deserializes an optional humantime duration.
pub fn opt_duration<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
    duration(d).map(Some)
}

/// Serializes a duration as a humantime string.
pub fn ser_duration<S: Serializer>(v: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.collect_str(&humantime::format_duration(*v))
}

/// Parses a size: `"25MiB"`, `"10 MB"`, `"4096"`, `"1G"`.
pub fn parse_size(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: u64 = num
        .parse()
        .map_err(|_| format!("invalid size {s:?}: expected a number of bytes or e.g. \"25MiB\""))?;
    let mult: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" => 1_000,
        "kib" => 1 << 10,
        "m" | "mb" => 1_000_000,
        "mib" => 1 << 20,
        "g" | "gb" => 1_000_000_000,
        "gib" => 1 << 30,
        "t" | "tb" => 1_000_000_000_000,
        "tib" => 1 << 40,
        other => return Err(format!("invalid size {s:?}: unknown unit {other:?}")),
    };
    n.checked_mul(mult)
        .ok_or_else(|| format!("invalid size {s:?}: too large"))
}

/// A TOML value that may be an integer or a string (`25`, `"25MiB"`, `"5-9"`).
#[derive(Deserialize)]
#[serde(untagged)]
pub enum IntOrStr {
    /// An integer.
    Int(i64),
    /// A string.
    Str(String),
}

/// Deserializes a size in bytes from an integer or a string with a unit.
pub fn size<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
    use IntOrStr as Raw;
    match Raw::deserialize(d)? {
        Raw::Int(i) if i >= 0 => Ok(i as u64),
        Raw::Int(i) => Err(serde::de::Error::custom(format!(
            "invalid size {i}: must not be negative"
        ))),
        Raw::Str(s) => parse_size(&s).map_err(serde::de::Error::custom),
    }
}

/// A message rate such as `"50/s"`, `"1000/min"`, `"10000/h"`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Rate {
    /// How many messages …
    pub count: u32,
    /// … per this period.
    pub per: Duration,
}

impl Rate {
    /// Messages per second.
    pub fn per_second(&self) -> f64 {
        self.count as f64 / self.per.as_secs_f64()
    }
}

impl fmt::Display for Rate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // the way it is written in configuration: "50/s", "600/min", "10000/h"
        match self.per.as_secs() {
            1 if self.per.subsec_nanos() == 0 => write!(f, "{}/s", self.count),
            60 if self.per.subsec_nanos() == 0 => write!(f, "{}/min", self.count),
            3600 if self.per.subsec_nanos() == 0 => write!(f, "{}/h", self.count),
            86400 if self.per.subsec_nanos() == 0 => write!(f, "{}/day", self.count),
            _ => write!(f, "{}/{}", self.count, humantime::format_duration(self.per)),
        }
    }
}

impl std::str::FromStr for Rate {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (n, p) = s
            .split_once('/')
            .ok_or_else(|| format!("invalid rate {s:?}: expected e.g. \"50/s\""))?;
        let count: u32 = n
            .trim()
            .parse()
            .map_err(|_| format!("invalid rate {s:?}: {n:?} is not a count"))?;
        let p = p.trim();
        let per = match p {
            "s" | "sec" | "second" => Duration::from_secs(1),
            "m" | "min" | "minute" => Duration::from_secs(60),
            "h" | "hour" => Duration::from_secs(3600),
            "d" | "day" => Duration::from_secs(86400),
            other => {
                humantime::parse_duration(other).map_err(|e| format!("invalid rate {s:?}: {e}"))?
            }
        };
        if count == 0 || per.is_zero() {
            return Err(format!("invalid rate {s:?}: must be positive"));
        }
        Ok(Rate { count, per })
    }
}

impl<'de> Deserialize<'de> for Rate {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(parse_size("4096").unwrap(), 4096);
        assert_eq!(parse_size("25MiB").unwrap(), 25 << 20);
        assert_eq!(parse_size("10 MB").unwrap(), 10_000_000);
        assert!(parse_size("10 parsecs").is_err());
        assert!(parse_size("-1").is_err());
        assert!(parse_size("99999999999999999999").is_err());
    }

    #[test]
    fn rates() {
        let r: Rate = "50/s".parse().unwrap();
        assert_eq!(r.per_second(), 50.0);
        let r: Rate = "600/min".parse().unwrap();
        assert_eq!(r.per_second(), 10.0);
        assert!("0/s".parse::<Rate>().is_err());
        assert!("fast".parse::<Rate>().is_err());
    }
}
