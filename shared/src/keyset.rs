//! Opaque keyset-pagination cursors: the (timestamp, id) of the last item of a page, as
//! URL-safe base64 so clients treat it as a token rather than something to build themselves.

use base64::Engine;
use chrono::{DateTime, Utc};

const ENGINE: base64::engine::GeneralPurpose = base64::engine::general_purpose::URL_SAFE_NO_PAD;

/// `at` (to the microsecond) and `id` as one token.
pub fn encode(at: DateTime<Utc>, id: &str) -> String {
    ENGINE.encode(format!("{}|{id}", at.timestamp_micros()))
}

/// Years a cursor's time may fall in: every stored row's time does, and PostgreSQL refuses some
/// times that chrono accepts (before 4713 BC), which a forged cursor would turn into a 500.
const YEARS: std::ops::RangeInclusive<i32> = 1970..=9999;

/// The timestamp and id of a token made by [`encode`]; `None` for anything else, including a
/// forged token whose time is out of range or whose id holds control characters (NUL among
/// them, which PostgreSQL's text type refuses).
pub fn decode(token: &str) -> Option<(DateTime<Utc>, String)> {
    let raw = String::from_utf8(ENGINE.decode(token).ok()?).ok()?;
    let (micros, id) = raw.split_once('|')?;
    let at = DateTime::from_timestamp_micros(micros.parse().ok()?)?;
    if !YEARS.contains(&chrono::Datelike::year(&at)) || id.chars().any(char::is_control) {
        return None;
    }
    Some((at, id.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_rejects_garbage() {
        let at = DateTime::from_timestamp_micros(1_700_000_000_123_456).expect("time");
        assert_eq!(decode(&encode(at, "abc")), Some((at, "abc".to_owned())));
        assert_eq!(decode("not base64!"), None);
        assert_eq!(decode(&ENGINE.encode("no-separator")), None);
        assert_eq!(decode(&ENGINE.encode("x|id")), None);
        let ancient = DateTime::from_timestamp(-300_000_000_000, 0).expect("chrono allows it");
        assert_eq!(decode(&encode(ancient, "abc")), None);
        assert_eq!(decode(&encode(at, "a\0b")), None);
    }
}
