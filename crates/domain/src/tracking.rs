//! Shipment tracking: a tracking URL must be http(s) with a host (R21), and where the carrier is known its
//! tracking number must have that carrier's shape.

use regex::Regex;
use serde::{Deserialize, Serialize};
use std::sync::LazyLock;
use utoipa::ToSchema;

/// Carriers whose tracking-number shape we know. `other` accepts any non-empty number.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Carrier {
    Ups,
    Fedex,
    Dhl,
    Usps,
    SfExpress,
    Other,
}

impl Carrier {
    pub fn parse(name: &str) -> Option<Carrier> {
        let key: String = name
            .chars()
            .filter(|c| c.is_ascii_alphanumeric())
            .collect::<String>()
            .to_ascii_lowercase();
        Some(match key.as_str() {
            "ups" => Carrier::Ups,
            "fedex" => Carrier::Fedex,
            "dhl" | "dhlexpress" => Carrier::Dhl,
            "usps" => Carrier::Usps,
            "sf" | "sfexpress" | "shunfeng" => Carrier::SfExpress,
            "other" => Carrier::Other,
            _ => return None,
        })
    }

    fn pattern(self) -> Option<(&'static Regex, &'static str)> {
        static UPS: LazyLock<Regex> = LazyLock::new(|| anchored(r"1Z[0-9A-Z]{16}|T\d{10}|\d{9}|\d{26}"));
        static FEDEX: LazyLock<Regex> = LazyLock::new(|| anchored(r"\d{12}|\d{15}|\d{20}|\d{22}"));
        static DHL: LazyLock<Regex> =
            LazyLock::new(|| anchored(r"\d{10,11}|JJD\d{18,20}|JVGL\d{16,20}|GM\d{16,18}|[A-Z]{2}\d{9}[A-Z]{2}"));
        static USPS: LazyLock<Regex> = LazyLock::new(|| anchored(r"9[1-5]\d{18,20}|\d{20,22}|[A-Z]{2}\d{9}US"));
        static SF: LazyLock<Regex> = LazyLock::new(|| anchored(r"SF\d{12,13}|\d{12}"));
        Some(match self {
            Carrier::Ups => (
                &UPS,
                "1Z followed by 16 letters or digits (or T + 10 digits, 9 or 26 digits)",
            ),
            Carrier::Fedex => (&FEDEX, "12, 15, 20 or 22 digits"),
            Carrier::Dhl => (
                &DHL,
                "10-11 digits, JJD/JVGL/GM numbers, or an S10 code like RR123456789DE",
            ),
            Carrier::Usps => (&USPS, "20-22 digits, or an S10 code ending in US"),
            Carrier::SfExpress => (&SF, "SF followed by 12-13 digits, or 12 digits"),
            Carrier::Other => return None,
        })
    }
}

fn anchored(alternatives: &str) -> Regex {
    // The patterns are constants of this file; a test compiles every one of them.
    Regex::new(&format!("^(?:{alternatives})$")).expect("carrier pattern compiles")
}

/// Checks a tracking URL: absolute http or https with a host. Returns why not, in words.
pub fn check_tracking_url(raw: &str) -> Result<(), String> {
    let trimmed = raw.trim();
    if trimmed.is_empty() {
        return Err("is empty".into());
    }
    let parsed = url::Url::parse(trimmed).map_err(|e| format!("is not a URL ({e})"))?;
    if parsed.scheme() != "http" && parsed.scheme() != "https" {
        return Err(format!("must use http or https, not {}", parsed.scheme()));
    }
    match parsed.host_str() {
        Some(host) if !host.is_empty() && (host.contains('.') || host == "localhost") => Ok(()),
        _ => Err("must name a host, e.g. https://www.ups.com/track?tracknum=...".into()),
    }
}

/// Checks a tracking number against the carrier's shape (spaces and dashes ignored, case-insensitive).
pub fn check_tracking_number(carrier: Carrier, raw: &str) -> Result<(), String> {
    let number: String = raw
        .chars()
        .filter(|c| !c.is_whitespace() && *c != '-')
        .collect::<String>()
        .to_ascii_uppercase();
    if number.is_empty() {
        return Err("is empty".into());
    }
    match carrier.pattern() {
        Some((re, shape)) if !re.is_match(&number) => {
            Err(format!("is not a valid {carrier:?} tracking number: expected {shape}"))
        }
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tracking_urls_need_http_and_a_host() {
        assert!(check_tracking_url("https://www.ups.com/track?tracknum=1Z999AA10123456784").is_ok());
        assert!(check_tracking_url("http://track.example.com/x").is_ok());
        assert!(check_tracking_url("ftp://ups.com/x").is_err());
        assert!(check_tracking_url("https://").is_err());
        assert!(check_tracking_url("not a url").is_err());
        assert!(check_tracking_url("javascript:alert(1)").is_err());
        assert!(check_tracking_url("https://nodot/x").is_err());
        assert!(check_tracking_url("  ").is_err());
    }

    #[test]
    fn known_carriers_check_their_number_shape() {
        for carrier in [
            Carrier::Ups,
            Carrier::Fedex,
            Carrier::Dhl,
            Carrier::Usps,
            Carrier::SfExpress,
        ] {
            assert!(carrier.pattern().is_some());
        }
        assert!(check_tracking_number(Carrier::Ups, "1Z999AA10123456784").is_ok());
        assert!(check_tracking_number(Carrier::Ups, "1z 999 aa1 0123 456 784").is_ok());
        assert!(check_tracking_number(Carrier::Ups, "12345").is_err());
        assert!(check_tracking_number(Carrier::Fedex, "123456789012").is_ok());
        assert!(check_tracking_number(Carrier::Fedex, "1Z999AA10123456784").is_err());
        assert!(check_tracking_number(Carrier::Dhl, "1234567890").is_ok());
        assert!(check_tracking_number(Carrier::Dhl, "12345").is_err());
        assert!(check_tracking_number(Carrier::Usps, "9400111899223856928499").is_ok());
        assert!(check_tracking_number(Carrier::Usps, "EA123456789US").is_ok());
        assert!(check_tracking_number(Carrier::SfExpress, "SF1234567890123").is_ok());
        assert!(check_tracking_number(Carrier::SfExpress, "SF12").is_err());
        assert!(check_tracking_number(Carrier::Other, "anything-at-all").is_ok());
        assert!(check_tracking_number(Carrier::Other, "").is_err());
        assert_eq!(Carrier::parse("SF Express"), Some(Carrier::SfExpress));
        assert_eq!(Carrier::parse("FedEx"), Some(Carrier::Fedex));
        assert_eq!(Carrier::parse("pigeon"), None);
    }
}
