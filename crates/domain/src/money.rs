//! Exact money: integer minor units with an ISO 4217 currency. Never a float.
//! On the wire an amount is a decimal string (`"1234.50"`) so that people can read and type it.

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use utoipa::ToSchema;

#[derive(Debug, Clone, PartialEq, Eq, ToSchema)]
#[schema(example = json!({"currency": "USD", "amount": "1250.00"}))]
pub struct Money {
    /// ISO 4217 code, three capital letters.
    pub currency: String,
    /// The amount in the currency's minor unit (cents for USD, yen for JPY).
    #[schema(value_type = String)]
    pub minor: i64,
}

/// Digits after the decimal point for a currency (ISO 4217; 2 unless listed).
pub fn exponent(currency: &str) -> u32 {
    match currency {
        "JPY" | "KRW" | "VND" | "CLP" | "ISK" | "UGX" | "XAF" | "XOF" | "PYG" => 0,
        "BHD" | "KWD" | "OMR" | "JOD" | "TND" | "LYD" | "IQD" => 3,
        _ => 2,
    }
}

impl Money {
    /// Parses `"1234.50"` in `currency`. Refuses more decimals than the currency has, signs and exponents.
    pub fn parse(currency: &str, amount: &str) -> Result<Money, String> {
        if currency.len() != 3 || !currency.bytes().all(|b| b.is_ascii_uppercase()) {
            return Err(format!(
                "currency '{currency}' must be an ISO 4217 code such as USD, EUR or CNY"
            ));
        }
        let exp = exponent(currency);
        let (whole, frac) = amount.split_once('.').unwrap_or((amount, ""));
        if whole.is_empty() || !whole.bytes().all(|b| b.is_ascii_digit()) || !frac.bytes().all(|b| b.is_ascii_digit()) {
            return Err(format!(
                "amount '{amount}' must be a non-negative decimal number such as 1250.00"
            ));
        }
        if frac.len() > exp as usize {
            return Err(format!("amount '{amount}' has more than {exp} decimals for {currency}"));
        }
        let scale = 10i64.pow(exp);
        let whole: i64 = whole.parse().map_err(|_| format!("amount '{amount}' is too large"))?;
        let frac_value: i64 = if frac.is_empty() {
            0
        } else {
            format!("{frac:0<width$}", width = exp as usize).parse().unwrap_or(0)
        };
        let minor = whole
            .checked_mul(scale)
            .and_then(|m| m.checked_add(frac_value))
            .ok_or_else(|| format!("amount '{amount}' is too large"))?;
        Ok(Money {
            currency: currency.to_string(),
            minor,
        })
    }

    /// The amount as a decimal string with the currency's number of decimals.
    pub fn amount_string(&self) -> String {
        let exp = exponent(&self.currency);
        if exp == 0 {
            return self.minor.to_string();
        }
        let scale = 10i64.pow(exp);
        let sign = if self.minor < 0 { "-" } else { "" };
        let abs = self.minor.unsigned_abs();
        format!(
            "{sign}{}.{:0width$}",
            abs / scale as u64,
            abs % scale as u64,
            width = exp as usize
        )
    }
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Wire {
    currency: String,
    amount: String,
}

impl Serialize for Money {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        Wire {
            currency: self.currency.clone(),
            amount: self.amount_string(),
        }
        .serialize(s)
    }
}

impl<'de> Deserialize<'de> for Money {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let wire = Wire::deserialize(d)?;
        Money::parse(&wire.currency, &wire.amount).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn amounts_are_exact_in_minor_units() {
        assert_eq!(Money::parse("USD", "1250.5").unwrap().minor, 125_050);
        assert_eq!(Money::parse("USD", "0.01").unwrap().minor, 1);
        assert_eq!(Money::parse("JPY", "1250").unwrap().minor, 1250);
        assert_eq!(Money::parse("KWD", "1.234").unwrap().minor, 1234);
        assert_eq!(Money::parse("USD", "1250.50").unwrap().amount_string(), "1250.50");
        assert!(Money::parse("USD", "1.234").is_err());
        assert!(Money::parse("JPY", "1.5").is_err());
        assert!(Money::parse("USD", "-5").is_err());
        assert!(Money::parse("USD", "1e5").is_err());
        assert!(Money::parse("usd", "5").is_err());
        assert!(Money::parse("USD", "99999999999999999999").is_err());
        let json = serde_json::to_string(&Money::parse("CNY", "88.80").unwrap()).unwrap();
        assert_eq!(json, r#"{"currency":"CNY","amount":"88.80"}"#);
    }
}
