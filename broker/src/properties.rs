//! A RocketMQ property string (`key 0x01 value 0x02 ...`) into an mqstore [`Message`].

use mqstore::Message;

/// Property keys with a meaning to the broker.
pub mod key {
    /// The message's tag.
    pub const TAGS: &str = "TAGS";
    /// Space-separated lookup keys.
    pub const KEYS: &str = "KEYS";
    /// The record CRC the store adds itself.
    pub const CRC: &str = "__CRC32#";
    /// Delay level of a scheduled message.
    pub const DELAY: &str = "DELAY";
    /// Delivery time of a timer message.
    pub const TIMER_DELIVER_MS: &str = "TIMER_DELIVER_MS";
    /// The topic a retried message came from.
    pub const RETRY_TOPIC: &str = "RETRY_TOPIC";
    /// The id of the message a retry copies.
    pub const ORIGIN_MESSAGE_ID: &str = "ORIGIN_MESSAGE_ID";
}

/// Why a property string is refused.
#[derive(Debug, thiserror::Error)]
pub enum PropertyError {
    /// A pair without its separator.
    #[error("property {0:?} has no value separator")]
    Malformed(String),
    /// A feature the broker does not serve.
    #[error("{0}")]
    Unsupported(&'static str),
}

/// The pairs of a property string, empty pairs skipped.
pub fn pairs(raw: &str) -> Result<Vec<(&str, &str)>, PropertyError> {
    raw.split('\u{2}')
        .filter(|p| !p.is_empty())
        .map(|p| {
            p.split_once('\u{1}')
                .ok_or_else(|| PropertyError::Malformed(p.chars().take(64).collect()))
        })
        .collect()
}

/// `msg` with the properties of `raw`: TAGS and KEYS to their own fields, the store's CRC
/// dropped (it is written anew), the rest kept in order.
pub fn apply(mut msg: Message, raw: &str) -> Result<Message, PropertyError> {
    for (k, v) in pairs(raw)? {
        match k {
            key::TAGS if !v.is_empty() => msg = msg.with_tags(v),
            key::TAGS | key::CRC => {}
            key::KEYS => msg = msg.with_keys(v.split(' ').filter(|k| !k.is_empty())),
            key::DELAY | key::TIMER_DELIVER_MS if v != "0" => {
                return Err(PropertyError::Unsupported(
                    "scheduled (delayed) messages are not supported by mqstore-broker",
                ));
            }
            _ => msg = msg.with_property(k, v),
        }
    }
    Ok(msg)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_keys_and_the_rest_go_where_they_belong() {
        let raw = "TAGS\u{1}A\u{2}KEYS\u{1}k1 k2\u{2}UNIQ_KEY\u{1}ABC\u{2}__CRC32#\u{1}5\u{2}WAIT\u{1}true\u{2}";
        let m = apply(Message::new("T", 0, b"x".to_vec()), raw).unwrap();
        let expected = Message::new("T", 0, b"x".to_vec())
            .with_tags("A")
            .with_keys(["k1", "k2"])
            .with_property("UNIQ_KEY", "ABC")
            .with_property("WAIT", "true");
        assert_eq!(m, expected);
    }

    #[test]
    fn malformed_and_delayed_are_refused() {
        assert!(matches!(
            apply(Message::new("T", 0, vec![]), "novalue\u{2}"),
            Err(PropertyError::Malformed(_))
        ));
        assert!(matches!(
            apply(Message::new("T", 0, vec![]), "DELAY\u{1}3\u{2}"),
            Err(PropertyError::Unsupported(_))
        ));
    }
}
