//! IBAN checks (ISO 13616 mod-97), shared by every extractor that finds a payee account.

/// Shortest IBAN in use (Norway).
const MIN_LEN: usize = 15;
/// Longest IBAN ISO 13616 allows.
const MAX_LEN: usize = 34;

/// Whether `iban` is structurally valid and passes the ISO 13616 mod-97 check.
///
/// Spaces are ignored and letters may be in either case, so both `DE89 3704 0044 0532 0130 00`
/// and `de89370400440532013000` pass. It checks the shape (two-letter country code, two check
/// digits, 15 to 34 alphanumerics in all) and the checksum, not the country-specific length or
/// whether the account exists.
pub(crate) fn iban_is_valid(iban: &str) -> bool {
    let compact = normalize_iban(iban);
    let bytes = compact.as_bytes();
    let well_formed = (MIN_LEN..=MAX_LEN).contains(&bytes.len())
        && bytes[..2].iter().all(u8::is_ascii_uppercase)
        && bytes[2..4].iter().all(u8::is_ascii_digit)
        && bytes.iter().all(u8::is_ascii_alphanumeric);
    if !well_formed {
        return false;
    }
    // Move the country code and check digits to the end, read letters as 10..=35 and take the
    // remainder digit by digit, so no big integers are needed.
    let rearranged = bytes[4..].iter().chain(&bytes[..4]);
    let remainder = rearranged.fold(0u32, |acc, &b| match b {
        b'0'..=b'9' => (acc * 10 + u32::from(b - b'0')) % 97,
        _ => (acc * 100 + u32::from(b - b'A') + 10) % 97,
    });
    remainder == 1
}

/// `iban` without whitespace and with ASCII letters in upper case, the form it is stored in.
pub(crate) fn normalize_iban(iban: &str) -> String {
    iban.chars().filter(|c| !c.is_whitespace()).map(|c| c.to_ascii_uppercase()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn valid_ibans_pass() {
        for iban in [
            "DE89370400440532013000",
            "DE89 3704 0044 0532 0130 00",
            "de89370400440532013000",
            "GB82WEST12345698765432",
            "NO9386011117947",
            "FR1420041010050500013M02606",
            "MT84MALT011000012345MTLCAST001S",
            // The XRechnung test suite's dummy account: "does not exist, but is valid".
            "DE79000000001234567890",
        ] {
            assert!(iban_is_valid(iban), "{iban} should pass");
        }
    }

    #[test]
    fn invalid_ibans_fail() {
        for iban in [
            "",
            "DE88370400440532013000", // wrong check digits
            "DE89370400440532013001", // one digit changed
            "DE89370400440532031000", // two digits swapped
            "IBAN32423940",           // Peppol's placeholder
            "DE12 1234 5678 9012 3456 78",
            "DE8937040044",                        // too short
            "DE893704004405320130000000000000000", // too long
            "D989370400440532013000",              // country code not letters
            "DEAB370400440532013000",              // check digits not digits
            "DE89-3704-0044-0532-0130-00",
            "DE8937040044053201300Ä",
        ] {
            assert!(!iban_is_valid(iban), "{iban} should fail");
        }
    }

    #[test]
    fn normalizes_spacing_and_case() {
        assert_eq!(normalize_iban(" de89 3704\t0044 0532 0130 00 "), "DE89370400440532013000");
    }
}
