//! Notification's own settings, beside the common
//! [`ServiceConfig`](tongban_runtime::config::ServiceConfig), from the same file and
//! environment: `[smtp]` (e-mail; absent means no e-mail), `[webhooks]` (where webhooks may
//! point beyond public https) and `[limits]`. In the environment: `TONGBAN_SMTP__HOST`,
//! `TONGBAN_NOTIFICATION__WEBHOOKS__ALLOW`, and so on.

use std::time::Duration;

use serde::Deserialize;
use tongban_runtime::config::{ConfigError, Section, ServiceConfig};

use crate::{
    DEFAULT_STREAMS_PER_CALLER, NotificationOptions, RetryPolicy, SmtpSettings, WebhookPolicy,
    schedule::{DEFAULT_RETRY_MAX_ATTEMPTS, DEFAULT_RETRY_MAX_DELAY, DEFAULT_RETRY_WINDOW},
};

/// The port notification listens on unless configured otherwise.
pub const DEFAULT_PORT: u16 = 50053;

/// Notification-only settings.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct NotificationConfig {
    /// SMTP server for e-mail; absent disables e-mail.
    pub smtp: Option<SmtpSettings>,
    pub webhooks: WebhookSettings,
    pub limits: NotificationLimits,
}

/// What webhooks may reach beyond public `https://` endpoints.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct WebhookSettings {
    /// Accept plain `http://` URLs.
    pub allow_http: bool,
    /// CIDRs, addresses and host names webhooks may reach although they are not public; a
    /// list, or one comma-separated string.
    #[serde(deserialize_with = "tongban_runtime::config::comma_list")]
    pub allow: Vec<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct NotificationLimits {
    /// Open Subscribe streams one caller may hold.
    pub streams_per_caller: usize,
    /// How long e-mails and webhook calls are retried after their first failure before they
    /// are dead (listed and replayed by an admin), in seconds.
    pub retry_window_secs: u64,
    /// Longest wait between two attempts at an e-mail or a webhook call, in seconds.
    pub retry_max_delay_secs: u64,
    /// Most attempts at one e-mail or webhook call before it is dead, whatever the window.
    pub retry_max_attempts: u32,
}

impl Default for NotificationLimits {
    fn default() -> Self {
        Self {
            streams_per_caller: DEFAULT_STREAMS_PER_CALLER,
            retry_window_secs: DEFAULT_RETRY_WINDOW.as_secs(),
            retry_max_delay_secs: DEFAULT_RETRY_MAX_DELAY.as_secs(),
            retry_max_attempts: DEFAULT_RETRY_MAX_ATTEMPTS,
        }
    }
}

impl NotificationLimits {
    /// The retry schedule of e-mails and webhook calls under these limits.
    pub fn retry_policy(&self) -> RetryPolicy {
        RetryPolicy {
            cap: Duration::from_secs(self.retry_max_delay_secs),
            max_attempts: self.retry_max_attempts,
            window: Duration::from_secs(self.retry_window_secs),
            ..RetryPolicy::default()
        }
    }
}

impl Section for NotificationConfig {
    fn problems(&self) -> Vec<String> {
        let mut out = Vec::new();
        if let Some(smtp) = &self.smtp {
            out.extend(smtp.problems());
        }
        if let Err(e) = self.webhook_policy(false) {
            out.push(format!("webhooks.allow: {e}"));
        }
        let l = &self.limits;
        if l.streams_per_caller == 0 {
            out.push("limits.streams_per_caller: must be at least 1".into());
        }
        if l.retry_window_secs == 0 {
            out.push("limits.retry_window_secs: must be at least 1".into());
        }
        if l.retry_max_delay_secs == 0 {
            out.push("limits.retry_max_delay_secs: must be at least 1".into());
        }
        if l.retry_max_attempts == 0 {
            out.push("limits.retry_max_attempts: must be at least 1".into());
        }
        out
    }
}

impl NotificationConfig {
    /// The common configuration and notification's own, from the process's file and
    /// environment.
    pub fn load() -> Result<(ServiceConfig, Self), ConfigError> {
        ServiceConfig::load_with("notification", DEFAULT_PORT)
    }

    /// The webhook policy; `dev` adds plain http and this machine, as `tongban dev` runs.
    pub fn webhook_policy(&self, dev: bool) -> Result<WebhookPolicy, String> {
        let mut policy = WebhookPolicy {
            allow_http: self.webhooks.allow_http || dev,
            ..WebhookPolicy::default()
        };
        policy.allow(&self.webhooks.allow.join(","))?;
        if dev {
            policy.allow("127.0.0.1/32,::1/128")?;
        }
        Ok(policy)
    }

    /// The service's options under these settings (`dev` as in [`webhook_policy`](Self::webhook_policy)).
    pub fn options(&self, dev: bool) -> anyhow::Result<NotificationOptions> {
        Ok(NotificationOptions {
            smtp: self.smtp.clone(),
            webhook_policy: self.webhook_policy(dev).map_err(anyhow::Error::msg)?,
            subscribe_streams_per_caller: self.limits.streams_per_caller,
            webhook_retry: self.limits.retry_policy(),
            email_retry: self.limits.retry_policy(),
            ..NotificationOptions::default()
        })
    }
}

/// Checks the configuration these environment variables alone give notification, naming every
/// bad or unknown key.
pub fn check_env(vars: &[(String, String)]) -> Result<(), ConfigError> {
    tongban_runtime::config::check_env::<NotificationConfig>("notification", DEFAULT_PORT, vars)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn smtp_and_webhooks_come_through_the_loader() -> anyhow::Result<()> {
        let sources = tongban_runtime::config::Sources::env_only(&vars(&[
            ("TONGBAN_SMTP__HOST", "mail.example.gov.cn"),
            ("TONGBAN_NOTIFICATION__SMTP__PORT", "587"),
            ("TONGBAN_SMTP__TLS", "true"),
            ("TONGBAN_SMTP__USERNAME", "tongban"),
            ("TONGBAN_SMTP__PASSWORD", "s3cret"),
            ("TONGBAN_WEBHOOKS__ALLOW", "10.1.2.0/24, hooks.internal"),
            ("TONGBAN_NOTIFICATION__LIMITS__STREAMS_PER_CALLER", "4"),
            ("TONGBAN_NOTIFICATION__LIMITS__RETRY_WINDOW_SECS", "7200"),
            ("TONGBAN_NOTIFICATION__LIMITS__RETRY_MAX_DELAY_SECS", "600"),
        ]));
        let (_, own) = ServiceConfig::load_from::<NotificationConfig>("notification", 1, &sources)?;
        let smtp = own.smtp.clone().ok_or_else(|| anyhow::anyhow!("smtp"))?;
        assert_eq!(
            (smtp.host.as_str(), smtp.port, smtp.tls),
            ("mail.example.gov.cn", 587, true)
        );
        assert_eq!(smtp.username.as_deref(), Some("tongban"));
        assert!(
            !format!("{own:?}").contains("s3cret"),
            "the password is redacted"
        );
        let opts = own.options(false)?;
        assert_eq!(opts.subscribe_streams_per_caller, 4);
        for retry in [&opts.email_retry, &opts.webhook_retry] {
            assert_eq!(retry.window, Duration::from_secs(7200));
            assert_eq!(retry.cap, Duration::from_secs(600));
            assert_eq!(retry.max_attempts, DEFAULT_RETRY_MAX_ATTEMPTS);
        }
        assert!(!opts.webhook_policy.allow_http);
        assert_eq!(opts.webhook_policy.allow_hosts, ["hooks.internal"]);
        assert!(own.options(true)?.webhook_policy.allow_http);
        Ok(())
    }

    #[test]
    fn bad_settings_are_named() {
        let err = check_env(&vars(&[
            ("TONGBAN_SMTP__HOST", " "),
            ("TONGBAN_SMTP__FROM", "not a mailbox"),
            ("TONGBAN_WEBHOOKS__ALLOW", "10.0.0.0/99"),
            ("TONGBAN_WEBHOOK_ALLOW_HTTP", "true"),
            ("TONGBAN_NOTIFICATION__LIMITS__RETRY_WINDOW_SECS", "0"),
            ("TONGBAN_NOTIFICATION__LIMITS__RETRY_WINDOW", "3600"),
        ]))
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
        for key in [
            "smtp.host",
            "smtp.from",
            "webhooks.allow",
            "webhook_allow_http: renamed",
            "limits.retry_window_secs: must be at least 1",
            "limits.retry_window: unknown key",
        ] {
            assert!(err.contains(key), "{key} missing from {err}");
        }
        assert!(check_env(&[]).is_ok());
    }
}
