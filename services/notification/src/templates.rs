//! Notification texts in Chinese and English (`deploy/notification/templates.toml`).
//!
//! A template key (`application.approved`, `material.overdue`, …) names one kind of message;
//! each has a `title` and a `body` per locale with `{placeholder}`s. Loading checks that every
//! key the fan-in uses exists in both locales, so a missing text fails at start, not at 3 a.m.

use std::{collections::HashMap, path::Path};

use serde::Deserialize;

use crate::error::NotificationError;

/// The default locale, used for staff and for applicants who chose none.
pub const ZH_CN: &str = "zh-CN";
pub const EN: &str = "en";

/// Every template key the fan-in renders.
pub const KEYS: &[&str] = &[
    "application.submitted",
    "application.supplement_requested",
    "application.approved",
    "application.rejected",
    "application.revoked",
    "application.suspended",
    "request.answered",
    "rating.poor",
    "rating.rectified",
    "material.due_soon",
    "material.overdue",
    "task.created",
    "task.due_soon",
    "task.overdue",
    "task.escalated",
    "delivery.dead_lettered",
];

#[derive(Debug, Clone, Deserialize)]
pub struct Template {
    pub title: String,
    pub body: String,
}

/// A rendered message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rendered {
    pub title: String,
    pub body: String,
    pub locale: String,
}

#[derive(Debug, Clone)]
pub struct Templates {
    by_key: HashMap<String, HashMap<String, Template>>,
}

/// Maps a contact's locale to one we have texts for: anything English is `en`, the rest zh-CN.
pub fn normalize_locale(locale: &str) -> &'static str {
    let l = locale.trim().to_ascii_lowercase();
    if l == "en" || l.starts_with("en-") || l.starts_with("en_") {
        EN
    } else {
        ZH_CN
    }
}

impl Templates {
    /// Loads `deploy/notification/templates.toml`.
    pub fn load(path: &Path) -> Result<Self, NotificationError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| NotificationError::Config(format!("{}: {e}", path.display())))?;
        Self::parse(&text)
            .map_err(|e| NotificationError::Config(format!("{}: {e}", path.display())))
    }

    pub fn parse(text: &str) -> Result<Self, String> {
        let by_key: HashMap<String, HashMap<String, Template>> =
            toml::from_str(text).map_err(|e| e.to_string())?;
        for key in KEYS {
            for locale in [ZH_CN, EN] {
                if by_key.get(*key).and_then(|m| m.get(locale)).is_none() {
                    return Err(format!("template [\"{key}\".{locale}] is missing"));
                }
            }
        }
        Ok(Self { by_key })
    }

    /// Renders `key` in `locale` (falling back to zh-CN), filling placeholders from `vars`.
    pub fn render(&self, key: &str, locale: &str, vars: &HashMap<&str, String>) -> Rendered {
        let locale = normalize_locale(locale);
        let t = self
            .by_key
            .get(key)
            .and_then(|m| m.get(locale).or_else(|| m.get(ZH_CN)));
        match t {
            Some(t) => Rendered {
                title: fill(&t.title, vars),
                body: fill(&t.body, vars),
                locale: locale.to_string(),
            },
            // Unreachable for the keys in KEYS (checked at load); keeps a typo from panicking.
            None => Rendered {
                title: key.to_string(),
                body: String::new(),
                locale: locale.to_string(),
            },
        }
    }
}

/// Replaces each `{name}` whose name is in `vars`; leaves anything else as written.
pub fn fill(template: &str, vars: &HashMap<&str, String>) -> String {
    let mut out = String::with_capacity(template.len() + 32);
    let mut rest = template;
    while let Some(open) = rest.find('{') {
        out.push_str(&rest[..open]);
        let after = &rest[open + 1..];
        match after.find('}') {
            Some(close) if vars.contains_key(&after[..close]) => {
                out.push_str(&vars[&after[..close]]);
                rest = &after[close + 1..];
            }
            _ => {
                out.push('{');
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fills_known_placeholders_only() {
        let vars = HashMap::from([("a", "1".to_string()), ("b", "二".to_string())]);
        assert_eq!(fill("{a}-{b}-{c}-{", &vars), "1-二-{c}-{");
    }

    #[test]
    fn deployed_templates_are_complete() -> Result<(), String> {
        let text = include_str!("../../../deploy/notification/templates.toml");
        let t = Templates::parse(text)?;
        let vars = HashMap::from([("project_name", "X".to_string())]);
        assert_eq!(
            t.render("application.approved", "en", &vars).title,
            "Application approved: X"
        );
        assert_eq!(
            t.render("application.approved", "", &vars).title,
            "审批通过：X"
        );
        assert_eq!(normalize_locale("EN-us"), EN);
        Ok(())
    }

    #[test]
    fn missing_locale_is_refused() {
        let err = Templates::parse("[\"task.created\".zh-CN]\ntitle = \"t\"\nbody = \"b\"\n");
        assert!(err.is_err());
    }
}
