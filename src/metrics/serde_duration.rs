//! Serde helpers that write a [`Duration`] as a readable float in a stated unit.
//!
//! JSON has no duration type; a field using one of these helpers carries its unit in its name
//! (`p95_ms`, `start_s`), as the crate's style asks.

/// A [`Duration`](std::time::Duration) as milliseconds (`f64`).
pub(crate) mod millis {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer, de::Error as _};

    /// Writes `d` as fractional milliseconds.
    pub(crate) fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_f64(d.as_secs_f64() * 1e3)
    }

    /// Reads fractional milliseconds; rejects negative, NaN and overflowing values.
    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        let ms = f64::deserialize(d)?;
        Duration::try_from_secs_f64(ms / 1e3).map_err(D::Error::custom)
    }
}

/// A [`Duration`](std::time::Duration) as seconds (`f64`).
pub(crate) mod secs {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer, de::Error as _};

    /// Writes `d` as fractional seconds.
    pub(crate) fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_f64(d.as_secs_f64())
    }

    /// Reads fractional seconds; rejects negative, NaN and overflowing values.
    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        let s = f64::deserialize(d)?;
        Duration::try_from_secs_f64(s).map_err(D::Error::custom)
    }
}

/// An optional [`Duration`](std::time::Duration) as milliseconds (`f64`), `null` for `None`.
pub(crate) mod opt_millis {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer, de::Error as _};

    /// Writes `d` as fractional milliseconds, or `null`.
    pub(crate) fn serialize<S: Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
        match d {
            Some(d) => s.serialize_some(&(d.as_secs_f64() * 1e3)),
            None => s.serialize_none(),
        }
    }

    /// Reads fractional milliseconds or `null`; rejects negative, NaN and overflowing values.
    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<Option<Duration>, D::Error> {
        match Option::<f64>::deserialize(d)? {
            Some(ms) => Duration::try_from_secs_f64(ms / 1e3)
                .map(Some)
                .map_err(D::Error::custom),
            None => Ok(None),
        }
    }
}
