//! Kubernetes resource quantities (`50m`, `64Mi`, `1.5`, `1e3`): checked here so a
//! bad value is refused by the webhook with its name, not later by the API server.

/// The value of a quantity, for comparing a request with its limit. Approximate
/// (`f64`): exact enough to order any two quantities a person writes.
pub(crate) fn parse(text: &str) -> Result<f64, String> {
    let bad = || {
        format!(
            "{:?} is not a Kubernetes quantity (e.g. \"100m\", \"0.5\", \"64Mi\", \"1G\")",
            crate::names::shown(text)
        )
    };
    if text.is_empty() || text.len() > 64 {
        return Err(bad());
    }
    let digits_end = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.' || c == '+'))
        .unwrap_or(text.len());
    let (number, suffix) = text.split_at(digits_end);
    let number = number.strip_prefix('+').unwrap_or(number);
    if number.is_empty() || number == "." || number.matches('.').count() > 1 || number.contains('+')
    {
        return Err(bad());
    }
    let value: f64 = number.parse().map_err(|_| bad())?;
    let scale = match suffix {
        "" => 1.0,
        "n" => 1e-9,
        "u" => 1e-6,
        "m" => 1e-3,
        "k" => 1e3,
        "M" => 1e6,
        "G" => 1e9,
        "T" => 1e12,
        "P" => 1e15,
        "E" => 1e18,
        "Ki" => 1024f64,
        "Mi" => 1024f64.powi(2),
        "Gi" => 1024f64.powi(3),
        "Ti" => 1024f64.powi(4),
        "Pi" => 1024f64.powi(5),
        "Ei" => 1024f64.powi(6),
        exp => {
            let rest = exp
                .strip_prefix('e')
                .or_else(|| exp.strip_prefix('E'))
                .ok_or_else(bad)?;
            let digits = rest.strip_prefix(['+', '-']).unwrap_or(rest);
            if digits.is_empty() || digits.len() > 3 || !digits.bytes().all(|b| b.is_ascii_digit())
            {
                return Err(bad());
            }
            let e: i32 = rest.parse().map_err(|_| bad())?;
            10f64.powi(e)
        }
    };
    Ok(value * scale)
}

/// A quantity that must be more than zero.
pub(crate) fn positive(text: &str) -> Result<f64, String> {
    let v = parse(text)?;
    if v > 0.0 {
        Ok(v)
    } else {
        Err(format!(
            "{:?} must be more than zero",
            crate::names::shown(text)
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_what_kubernetes_accepts() {
        for (text, value) in [
            ("1", 1.0),
            ("100m", 0.1),
            ("0.5", 0.5),
            (".5", 0.5),
            ("+2", 2.0),
            ("64Mi", 64.0 * 1024.0 * 1024.0),
            ("1Gi", 1024f64.powi(3)),
            ("1G", 1e9),
            ("2k", 2000.0),
            ("1e3", 1000.0),
            ("1E-3", 0.001),
            ("250u", 0.00025),
        ] {
            let got = parse(text).unwrap_or_else(|e| panic!("{text}: {e}"));
            assert!(
                (got - value).abs() <= value * 1e-12,
                "{text}: {got} != {value}"
            );
        }
    }

    #[test]
    fn refuses_the_rest() {
        for text in [
            "", "-1", "1K", "1mi", "lots", "1.2.3", "Mi", "1 Mi", "1e", "1e1234", "0x10", ".",
            "1++",
        ] {
            assert!(parse(text).is_err(), "{text:?} was accepted");
        }
        assert!(positive("0").is_err());
        assert!(positive("0Mi").is_err());
    }
}
