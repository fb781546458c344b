//! `[[provider.<name>.automation]]` (and `[[domain.<d>.automation]]`) of
//! the shaping files: automatic back-off on what a provider answers. A rule
//! whose `regex` matches a remote reply (every line as `<code> <enhanced
//! status> <text>`, joined by newlines: [`crate::Reply::joined`]) — at once
//! or once `trigger` matches were seen within its window — holds the
//! provider for `duration`: its `lanes` (by default the bulk lanes, below
//! `[auth] transactional_min_lane`) are suspended, throttled, or bounced,
//! while the other lanes keep their reserved connections and the
//! provider's normal limits. When it ends the held lanes ramp back up over
//! `ramp` rather than at once.

use std::time::Duration;

use serde::{Deserialize, Deserializer};

use super::units::{self, Rate};
use crate::LaneSet;

/// What a rule does while it holds a provider.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum AutomationAction {
    /// The lanes send nothing to the provider.
    Suspend,
    /// The lanes send at `rate` over at most `max_connections`.
    Throttle,
    /// The matching recipient fails for good, and so does the lanes' mail
    /// to the provider while the rule holds.
    Bounce,
}

impl AutomationAction {
    /// As written in configuration.
    pub fn as_str(self) -> &'static str {
        match self {
            AutomationAction::Suspend => "suspend",
            AutomationAction::Throttle => "throttle",
            AutomationAction::Bounce => "bounce",
        }
    }
}

/// When a rule starts to hold: at the first match, or at the `count`th
/// within `window`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Trigger {
    /// The first match.
    #[default]
    Immediate,
    /// `count` matches within `window` (written `"5/10m"`).
    Threshold {
        /// Matches needed.
        count: u32,
        /// Within this long.
        window: Duration,
    },
}

impl std::str::FromStr for Trigger {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.trim() == "immediate" {
            return Ok(Trigger::Immediate);
        }
        let bad = || format!("invalid trigger {s:?}: expected \"immediate\" or e.g. \"5/10m\"");
        let (n, w) = s.split_once('/').ok_or_else(bad)?;
        let count: u32 = n.trim().parse().map_err(|_| bad())?;
        let window = humantime::parse_duration(w.trim()).map_err(|_| bad())?;
        if count == 0 || window.is_zero() {
            return Err(bad());
        }
        Ok(Trigger::Threshold { count, window })
    }
}

impl<'de> Deserialize<'de> for Trigger {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d)?
            .parse()
            .map_err(serde::de::Error::custom)
    }
}

/// One automation rule.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AutomationRule {
    /// Patterns (Rust regex syntax), any of which matching starts the rule.
    #[serde(deserialize_with = "one_or_many")]
    pub regex: Vec<String>,
    /// What the rule does.
    pub action: AutomationAction,
    /// How long it holds.
    #[serde(deserialize_with = "units::duration")]
    pub duration: Duration,
    /// When it starts. Default `"immediate"`.
    #[serde(default)]
    pub trigger: Trigger,
    /// The lanes it holds. Default: below `[auth] transactional_min_lane`.
    #[serde(default)]
    pub lanes: Option<LaneSet>,
    /// `throttle`: the held lanes' rate (also where the ramp starts).
    #[serde(default)]
    pub rate: Option<Rate>,
    /// `throttle`: most connections of the site that may carry any lane
    /// but the reserved ones.
    #[serde(default)]
    pub max_connections: Option<usize>,
    /// How long the held lanes take to come back to their normal limits
    /// after the rule ends. Default `"10m"`; `"0s"` for at once.
    #[serde(default, deserialize_with = "units::opt_duration")]
    pub ramp: Option<Duration>,
}

/// The ramp of a rule that does not name one.
pub const DEFAULT_RAMP: Duration = Duration::from_secs(600);

fn one_or_many<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Raw {
        One(String),
        Many(Vec<String>),
    }
    Ok(match Raw::deserialize(d)? {
        Raw::One(s) => vec![s],
        Raw::Many(v) => v,
    })
}

impl AutomationRule {
    /// Pushes every problem of the rule, named by `key`.
    pub fn check(&self, key: &str, errors: &mut Vec<String>) {
        if self.regex.is_empty() {
            errors.push(format!("{key}: regex names no pattern"));
        }
        for r in &self.regex {
            if let Err(e) = regex::Regex::new(r) {
                let e = e.to_string();
                let e = e.lines().last().unwrap_or("").trim();
                errors.push(format!("{key}: regex {r:?} is not valid: {e}"));
            }
        }
        if self.duration.is_zero() {
            errors.push(format!("{key}: duration must be above zero"));
        }
        if self.lanes.is_some_and(|l| l.is_empty()) {
            errors.push(format!("{key}: lanes names no lane"));
        }
        if self.max_connections == Some(0) {
            errors.push(format!("{key}: max_connections must be at least 1"));
        }
        match self.action {
            AutomationAction::Throttle => {
                if self.rate.is_none() && self.max_connections.is_none() {
                    errors.push(format!(
                        "{key}: action \"throttle\" needs a rate or max_connections"
                    ));
                }
            }
            _ => {
                if self.max_connections.is_some() {
                    errors.push(format!("{key}: max_connections is for action \"throttle\""));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn triggers_parse() {
        assert_eq!("immediate".parse::<Trigger>(), Ok(Trigger::Immediate));
        assert_eq!(
            "5/10m".parse::<Trigger>(),
            Ok(Trigger::Threshold {
                count: 5,
                window: Duration::from_secs(600)
            })
        );
        for bad in ["", "5", "0/1m", "x/1m", "5/soon", "5/0s"] {
            assert!(bad.parse::<Trigger>().is_err(), "{bad}");
        }
    }

    #[test]
    fn problems_name_their_key() {
        let rule: AutomationRule = toml::from_str(
            "regex = '(unclosed'\naction = 'throttle'\nduration = '0s'\nlanes = '0-3'\n",
        )
        .unwrap();
        let mut errors = Vec::new();
        rule.check("[provider.x.automation] 1", &mut errors);
        for want in [
            "[provider.x.automation] 1: regex \"(unclosed\" is not valid",
            "duration must be above zero",
            "needs a rate or max_connections",
        ] {
            assert!(
                errors.iter().any(|e| e.contains(want)),
                "{want}: {errors:#?}"
            );
        }
        let rule: AutomationRule = toml::from_str(
            "regex = ['4\\.7\\.28', 'unusual rate']\naction = 'suspend'\nduration = '1h'\n",
        )
        .unwrap();
        let mut errors = Vec::new();
        rule.check("k", &mut errors);
        assert!(errors.is_empty(), "{errors:#?}");
        assert_eq!(rule.regex.len(), 2);
        assert_eq!(rule.trigger, Trigger::Immediate);
    }
}
