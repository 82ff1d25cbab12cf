//! AMQP topic matching, for the embedded bus (RabbitMQ does this itself).

/// True when `routing_key` matches `pattern`: words separated by `.`, `*` is exactly one word,
/// `#` is zero or more words.
pub fn topic_matches(pattern: &str, routing_key: &str) -> bool {
    let p: Vec<&str> = pattern.split('.').collect();
    let k: Vec<&str> = routing_key.split('.').collect();
    matches(&p, &k)
}

fn matches(p: &[&str], k: &[&str]) -> bool {
    match p.split_first() {
        None => k.is_empty(),
        Some((&"#", rest)) => (0..=k.len()).any(|skip| matches(rest, &k[skip..])),
        Some((&word, rest)) => match k.split_first() {
            Some((&key, krest)) => (word == "*" || word == key) && matches(rest, krest),
            None => false,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::topic_matches;

    #[test]
    fn table() {
        let cases = [
            ("application.submitted", "application.submitted", true),
            ("application.*", "application.submitted", true),
            ("application.*", "application", false),
            ("application.*", "task.created", false),
            ("#", "task.created", true),
            ("task.#", "task", true),
            ("task.#", "task.a.b", true),
            ("*.created", "task.created", true),
            ("*.created", "task.x.created", false),
            ("#.created", "task.x.created", true),
        ];
        for (p, k, want) in cases {
            assert_eq!(topic_matches(p, k), want, "{p} vs {k}");
        }
    }
}
