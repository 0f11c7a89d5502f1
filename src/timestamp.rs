//! Timestamps in every form GitLab sends: `2016-08-12 15:23:28 UTC` (Pipeline and older Job
//! hooks) and ISO 8601 / RFC 3339 with or without fractions and offsets
//! (`2021-02-23T02:41:37.886Z`, `2014-02-27T10:06:20+02:00`).

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// An instant, in milliseconds since the Unix epoch (UTC).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp(pub i64);

impl Timestamp {
    /// The current time.
    pub fn now() -> Timestamp {
        let d = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        Timestamp(d.as_millis() as i64)
    }

    pub fn unix_millis(self) -> i64 {
        self.0
    }

    pub fn unix_seconds(self) -> i64 {
        self.0.div_euclid(1000)
    }

    /// A date `YYYY-MM-DD` (midnight UTC, as GitLab's `expires_at` of tokens), or any form
    /// [`Timestamp::parse`] reads.
    pub fn parse_date_or_time(text: &str) -> Option<Timestamp> {
        let text = text.trim();
        if text.len() == 10 {
            Timestamp::parse(&format!("{text}T00:00:00Z"))
        } else {
            Timestamp::parse(text)
        }
    }

    /// Parses any of the forms GitLab uses; `None` for anything else.
    pub fn parse(text: &str) -> Option<Timestamp> {
        let s = text.trim();
        let b = s.as_bytes();
        // The fixed-width head is sliced by byte position below: it must be ASCII.
        if b.len() < 19
            || !b[..19].is_ascii()
            || b[4] != b'-'
            || b[7] != b'-'
            || b[13] != b':'
            || b[16] != b':'
        {
            return None;
        }
        if b[10] != b'T' && b[10] != b' ' && b[10] != b't' {
            return None;
        }
        let year = digits(&s[0..4])?;
        let month = digits(&s[5..7])?;
        let day = digits(&s[8..10])?;
        let hour = digits(&s[11..13])?;
        let minute = digits(&s[14..16])?;
        let second = digits(&s[17..19])?;
        if !(1..=12).contains(&month) || day == 0 || day > days_in_month(year, month) {
            return None;
        }
        if hour > 23 || minute > 59 || second > 60 {
            return None;
        }
        let mut rest = &s[19..];
        let mut millis = 0i64;
        if let Some(frac) = rest.strip_prefix('.') {
            let len = frac.bytes().take_while(u8::is_ascii_digit).count();
            if len == 0 {
                return None;
            }
            let first3: String = frac[..len].chars().chain("000".chars()).take(3).collect();
            millis = digits(&first3)?;
            rest = &frac[len..];
        }
        let offset_minutes = match rest.trim_start() {
            "" | "Z" | "z" | "UTC" => 0,
            tz => {
                let sign = match tz.as_bytes()[0] {
                    b'+' => 1,
                    b'-' => -1,
                    _ => return None,
                };
                let hm = tz[1..].replace(':', "");
                if hm.len() != 4 || !hm.is_ascii() {
                    return None;
                }
                let h = digits(&hm[..2])?;
                let m = digits(&hm[2..])?;
                sign * (h * 60 + m)
            }
        };
        let days = days_from_civil(year, month, day);
        let secs = days * 86_400 + hour * 3_600 + minute * 60 + second - offset_minutes * 60;
        Some(Timestamp(secs * 1000 + millis))
    }

    /// Parses an HTTP date (RFC 7231 IMF-fixdate), e.g. `Wed, 21 Oct 2015 07:28:00 GMT`.
    pub fn parse_http_date(text: &str) -> Option<Timestamp> {
        let rest = text.trim().split_once(", ")?.1;
        let mut parts = rest.split_whitespace();
        let day = digits(parts.next()?)?;
        let month = match parts.next()? {
            "Jan" => 1,
            "Feb" => 2,
            "Mar" => 3,
            "Apr" => 4,
            "May" => 5,
            "Jun" => 6,
            "Jul" => 7,
            "Aug" => 8,
            "Sep" => 9,
            "Oct" => 10,
            "Nov" => 11,
            "Dec" => 12,
            _ => return None,
        };
        let year = digits(parts.next()?)?;
        let time = parts.next()?;
        if parts.next()? != "GMT" {
            return None;
        }
        Timestamp::parse(&format!("{year:04}-{month:02}-{day:02} {time} UTC"))
    }

    /// RFC 3339 in UTC with milliseconds, e.g. `2016-08-12T15:23:28.000Z`.
    /// The UTC date, `YYYY-MM-DD`.
    pub fn date(self) -> String {
        let (y, m, d) = civil_from_days(self.0.div_euclid(86_400_000));
        format!("{y:04}-{m:02}-{d:02}")
    }

    pub fn to_rfc3339(self) -> String {
        let secs = self.0.div_euclid(1000);
        let millis = self.0.rem_euclid(1000);
        let days = secs.div_euclid(86_400);
        let sod = secs.rem_euclid(86_400);
        let (y, m, d) = civil_from_days(days);
        format!(
            "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{millis:03}Z",
            sod / 3600,
            (sod % 3600) / 60,
            sod % 60
        )
    }
}

fn digits(s: &str) -> Option<i64> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

fn is_leap(y: i64) -> bool {
    (y % 4 == 0 && y % 100 != 0) || y % 400 == 0
}

fn days_in_month(y: i64, m: i64) -> i64 {
    match m {
        2 if is_leap(y) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's algorithm).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (
        if m <= 2 {
            yoe + era * 400 + 1
        } else {
            yoe + era * 400
        },
        m,
        d,
    )
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_rfc3339())
    }
}

impl<'de> Deserialize<'de> for Timestamp {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        Timestamp::parse(&text)
            .ok_or_else(|| serde::de::Error::custom(format!("unrecognised timestamp {text:?}")))
    }
}

impl Serialize for Timestamp {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_rfc3339())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expiry_dates_are_midnight_utc_and_datetimes_read_as_they_are() {
        assert_eq!(
            Timestamp::parse_date_or_time(" 2024-05-01 ")
                .unwrap()
                .to_rfc3339(),
            "2024-05-01T00:00:00.000Z"
        );
        assert_eq!(
            Timestamp::parse_date_or_time("2024-05-01T10:00:00Z")
                .unwrap()
                .to_rfc3339(),
            "2024-05-01T10:00:00.000Z"
        );
        assert_eq!(Timestamp::parse_date_or_time("2024-13-01"), None);
        assert_eq!(Timestamp::parse_date_or_time("soon"), None);
    }

    #[test]
    fn gitlab_utc_form_is_parsed() {
        let t = Timestamp::parse("2016-08-12 15:23:28 UTC").unwrap();
        assert_eq!(t.unix_seconds(), 1_471_015_408);
    }

    #[test]
    fn iso_forms_are_parsed_with_fraction_and_offset() {
        assert_eq!(
            Timestamp::parse("2021-02-23T02:41:37.886Z")
                .unwrap()
                .unix_millis(),
            1_614_048_097_886
        );
        assert_eq!(
            Timestamp::parse("2021-02-23T02:41:37Z")
                .unwrap()
                .unix_millis(),
            1_614_048_097_000
        );
        // 10:06:20 at +02:00 is 08:06:20 UTC.
        assert_eq!(
            Timestamp::parse("2014-02-27T10:06:20+02:00").unwrap(),
            Timestamp::parse("2014-02-27 08:06:20 UTC").unwrap()
        );
        assert_eq!(
            Timestamp::parse("2014-02-27T01:06:20-07:00").unwrap(),
            Timestamp::parse("2014-02-27T08:06:20Z").unwrap()
        );
    }

    #[test]
    fn malformed_timestamps_are_refused() {
        for bad in [
            "",
            "2015-04-08T21: 00:25-07:00",
            "2021-13-01T00:00:00Z",
            "2021-02-30T00:00:00Z",
            "yesterday",
            "2021-02-23T02:41:37+2",
        ] {
            assert_eq!(Timestamp::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn a_multibyte_character_straddling_the_seconds_is_refused_without_panic() {
        // 'é' occupies bytes 18..20, so byte 19 is inside it.
        for bad in [
            "2021-02-23T02:41:3é",
            "2021-02-23T02:41:3éZ",
            "2021-02-23T02:41:3\u{17F}Z",
            "2021-02-23T02:41:3\u{212A}Z",
            "2021-02-23T02:41:3\u{1F600}",
            "2021-02-23T02:41:3日Z",
        ] {
            assert_eq!(Timestamp::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn a_multibyte_character_in_the_offset_is_refused_without_panic() {
        // The offset without ':' is four bytes, but not four ASCII digits.
        for bad in [
            "2021-02-23T02:41:37+0é1",
            "2021-02-23T02:41:37+é:01",
            "2021-02-23T02:41:37-0\u{301}1",
            "2021-02-23T02:41:37+\u{200F}0",
            "2021-02-23T02:41:37+\u{212A}1",
        ] {
            assert_eq!(Timestamp::parse(bad), None, "{bad}");
        }
        assert_eq!(
            Timestamp::parse("2021-02-23T02:41:37+0000").map(Timestamp::unix_millis),
            Some(1_614_048_097_000)
        );
    }

    #[test]
    fn http_dates_are_parsed() {
        assert_eq!(
            Timestamp::parse_http_date("Wed, 21 Oct 2015 07:28:00 GMT"),
            Timestamp::parse("2015-10-21T07:28:00Z")
        );
        assert_eq!(Timestamp::parse_http_date("21 Oct 2015"), None);
        assert_eq!(
            Timestamp::parse_http_date("Wed, 21 Foo 2015 07:28:00 GMT"),
            None
        );
    }

    #[test]
    fn rfc3339_round_trips() {
        for s in [
            "2016-08-12T15:23:28.000Z",
            "2000-02-29T23:59:59.999Z",
            "1969-12-31T23:59:59.500Z",
        ] {
            assert_eq!(Timestamp::parse(s).unwrap().to_rfc3339(), s);
        }
    }
}
