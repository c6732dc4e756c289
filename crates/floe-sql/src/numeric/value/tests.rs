use super::*;

fn n(text: &str) -> Numeric {
    Numeric::parse(text).unwrap_or_else(|e| panic!("{text}: {e}"))
}

/// A small seeded generator (xorshift), so failures replay from the printed seed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    /// A value with up to 40 digits, any scale up to 30, some special values.
    fn numeric(&mut self) -> Numeric {
        match self.below(20) {
            0 => return Numeric::NaN,
            1 => return Numeric::Infinity,
            2 => return Numeric::NegInfinity,
            _ => {}
        }
        let len = 1 + self.below(40) as usize;
        let digits: String = (0..len)
            .map(|_| char::from(b'0' + self.below(10) as u8))
            .collect();
        let mut mantissa = BigInt::parse_bytes(digits.as_bytes(), 10).unwrap();
        if self.below(2) == 0 {
            mantissa = -mantissa;
        }
        let scale = self.below(31) as u32;
        Numeric::finite(mantissa, scale).unwrap()
    }
}

#[test]
fn text_keeps_the_written_scale() {
    for (input, output) in [
        ("1.50", "1.50"),
        ("1.5", "1.5"),
        ("  -0.005 ", "-0.005"),
        (".5", "0.5"),
        ("5.", "5"),
        ("1e3", "1000"),
        ("1.5e-3", "0.0015"),
        ("-0", "0"),
        ("0.000", "0.000"),
        ("nan", "NaN"),
        ("-Infinity", "-Infinity"),
        ("+inf", "Infinity"),
        (
            "12345678901234567890.123456789",
            "12345678901234567890.123456789",
        ),
    ] {
        assert_eq!(n(input).to_text(), output, "{input}");
    }
    for big in ["1e131072", "1e-16384", "1e99999999999", "1.5e-16383"] {
        assert_eq!(Numeric::parse(big), Err(NumericError::Overflow), "{big}");
    }
    assert_eq!(n("1e2000").to_text().len(), 2001);
    for bad in ["", "abc", "1.2.3", "1e", "--1", "1 2", "e5", "1e+-5"] {
        assert!(
            matches!(Numeric::parse(bad), Err(NumericError::InvalidText(_))),
            "{bad}"
        );
    }
}

#[test]
fn keys_round_trip_and_sort_like_values() {
    let seed = std::env::var("FLOE_TEST_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0x5eed_1234_u64);
    println!("seed {seed}");
    let mut rng = Rng(seed);
    let values: Vec<Numeric> = (0..2000).map(|_| rng.numeric()).collect();
    for v in &values {
        let key = v.to_key();
        assert_eq!(&Numeric::from_key(&key).unwrap(), v, "seed {seed}");
        let wire = v.to_pg_binary();
        let back = Numeric::from_pg_binary(&wire).unwrap();
        assert_eq!(back.to_text(), v.to_text(), "seed {seed}");
        assert_eq!(n(&v.to_text()).to_text(), v.to_text(), "seed {seed}");
    }
    // The key of a fixed-point value written from its digits is the value's key.
    for v in &values {
        if let Numeric::Finite { mantissa, scale } = v {
            let mut key = Vec::new();
            let digits = format!("00{}", mantissa.magnitude());
            write_finite_key(mantissa.sign() == Sign::Minus, &digits, *scale, &mut key);
            assert_eq!(key, v.to_key(), "seed {seed}");
        }
    }
    for pair in values.windows(2) {
        let (a, b) = (&pair[0], &pair[1]);
        let by_key = compare_keys(&a.to_key(), &b.to_key());
        assert_eq!(by_key, a.cmp_value(b), "{a:?} vs {b:?}, seed {seed}");
        // Whole keys order equal values by scale, never against the value order.
        if by_key != Ordering::Equal {
            assert_eq!(a.to_key().cmp(&b.to_key()), by_key);
        }
    }
    // Equal values with different scales.
    assert_eq!(
        compare_keys(&n("1.5").to_key(), &n("1.500").to_key()),
        Ordering::Equal
    );
    assert_eq!(
        compare_keys(&n("0").to_key(), &n("-0.00").to_key()),
        Ordering::Equal
    );
    assert_ne!(n("1.5").to_key(), n("1.500").to_key());
    // Special values sort as PostgreSQL sorts them.
    let ordered = [
        "-Infinity",
        "-100",
        "-1.5",
        "-0.001",
        "0",
        "0.001",
        "1",
        "1.05",
        "10",
        "Infinity",
        "NaN",
    ];
    for pair in ordered.windows(2) {
        assert_eq!(
            n(pair[0]).to_key().cmp(&n(pair[1]).to_key()),
            Ordering::Less,
            "{pair:?}"
        );
    }
}

#[test]
fn arithmetic_scales_follow_postgres() {
    let cases = [
        (n("1.50").add(&n("2.1")), "3.60"),
        (n("1.50").sub(&n("2")), "-0.50"),
        (n("1.50").mul(&n("2.25")), "3.3750"),
        (n("1").div(&n("3")), "0.33333333333333333333"),
        (n("2").div(&n("3")), "0.66666666666666666667"),
        (n("10").div(&n("3")), "3.3333333333333333"),
        (n("1").div(&n("8")), "0.12500000000000000000"),
        (n("-7.5").div(&n("2")), "-3.7500000000000000"),
        (n("100000").div(&n("3")), "33333.333333333333"),
        (
            n("1.000000000000000000000").div(&n("3")),
            "0.333333333333333333333",
        ),
        (n("7.5").rem(&n("2")), "1.5"),
        (n("-7").rem(&n("2.00")), "-1.00"),
        (n("2.5").round(0), "3"),
        (n("-2.5").round(0), "-3"),
        (n("1.2345").round(2), "1.23"),
        (n("1.5").round(3), "1.500"),
        (n("1234.5").round(-2), "1200"),
        (n("-1.99").trunc(1), "-1.9"),
        (n("-1.5").ceil(), "-1"),
        (n("-1.5").floor(), "-2"),
        (n("Infinity").add(&n("-Infinity")), "NaN"),
        (n("Infinity").mul(&n("0")), "NaN"),
        (n("5").div(&n("Infinity")), "0"),
        (n("NaN").add(&n("1")), "NaN"),
    ];
    for (result, expected) in cases {
        assert_eq!(result.unwrap().to_text(), expected);
    }
    assert_eq!(n("1").div(&n("0")), Err(NumericError::DivisionByZero));
    assert_eq!(n("1").rem(&n("0.0")), Err(NumericError::DivisionByZero));
}

#[test]
fn limits_and_typmods() {
    let big = format!("1{}", "0".repeat(131_072));
    assert_eq!(
        Numeric::parse(&big).map(|_| ()),
        Err(NumericError::Overflow)
    );
    let fits = format!("9{}", "0".repeat(131_071));
    assert!(Numeric::parse(&fits).is_ok());
    assert_eq!(n("123.456").apply_typmod(5, 2).unwrap().to_text(), "123.46");
    assert!(matches!(
        n("999.996").apply_typmod(5, 2),
        Err(NumericError::FieldOverflow(_))
    ));
    assert!(matches!(
        n("Infinity").apply_typmod(5, 2),
        Err(NumericError::FieldOverflow(_))
    ));
    assert_eq!(n("0.5").apply_typmod(2, 2).unwrap().to_text(), "0.50");
    assert_eq!(n("NaN").apply_typmod(5, 2).unwrap(), Numeric::NaN);
}

#[test]
fn conversions() {
    assert_eq!(Numeric::from_f64(0.1, 15).unwrap().to_text(), "0.1");
    assert_eq!(
        Numeric::from_f64(1.0 / 3.0, 15).unwrap().to_text(),
        "0.333333333333333"
    );
    assert_eq!(
        Numeric::from_f64(1e20, 15).unwrap().to_text(),
        "100000000000000000000"
    );
    assert_eq!(
        Numeric::from_f64(-2.5e-5, 15).unwrap().to_text(),
        "-0.000025"
    );
    assert_eq!(Numeric::from_f64(f64::NAN, 15).unwrap(), Numeric::NaN);
    assert_eq!(n("2.5").to_i64("integer").unwrap(), 3);
    assert_eq!(n("-2.5").to_i64("integer").unwrap(), -3);
    assert!(n("NaN").to_i64("integer").is_err());
    assert_eq!(n("1.25").to_f64().unwrap(), 1.25);
    assert_eq!(
        Numeric::from_decimal(BigInt::from(15), -2)
            .unwrap()
            .to_text(),
        "1500"
    );
}

#[test]
fn binary_form_matches_numeric_send() {
    let words = |w: &[i16]| w.iter().flat_map(|x| x.to_be_bytes()).collect::<Vec<u8>>();
    assert_eq!(n("1.50").to_pg_binary(), words(&[2, 0, 0, 2, 1, 5000]));
    assert_eq!(
        n("-12345.678").to_pg_binary(),
        words(&[3, 1, 0x4000, 3, 1, 2345, 6780])
    );
    assert_eq!(n("0.000000001").to_pg_binary(), words(&[1, -3, 0, 9, 1000]));
    assert_eq!(n("0.00").to_pg_binary(), words(&[0, 0, 0, 2]));
    assert_eq!(n("10000000").to_pg_binary(), words(&[1, 1, 0, 0, 1000]));
    assert_eq!(n("NaN").to_pg_binary(), words(&[0, 0, 0xC000u16 as i16, 0]));
    assert_eq!(
        Numeric::from_pg_binary(&words(&[0, 0, 0xD000u16 as i16, 0])).unwrap(),
        Numeric::Infinity
    );
    assert!(Numeric::from_pg_binary(&[0, 1]).is_err());
}

#[test]
fn fixed_keys_read_back_without_big_numbers() {
    let mut rng = Rng(0x5eed_f1ed);
    for i in 0..20_000 {
        // Mantissas of every size up to i128's, some with trailing zeros.
        let bits = rng.below(127) as u32;
        let mut m = ((rng.next() as u128) << 64 | rng.next() as u128) >> (127 - bits);
        if i % 3 == 0 {
            m = m / 1000 * 1000;
        }
        let m = if rng.below(2) == 0 {
            -(m as i128)
        } else {
            m as i128
        };
        let scale = rng.below(40) as u32;
        let mut key = Vec::new();
        write_finite_key(m < 0, &m.unsigned_abs().to_string(), scale, &mut key);
        assert_eq!(fixed_from_key(&key), Some((m, scale)), "{m} scale {scale}");
        let value = Numeric::from_key(&key).unwrap();
        assert_eq!(
            value,
            Numeric::Finite {
                mantissa: BigInt::from(m),
                scale
            }
        );
    }
    for text in ["NaN", "Infinity", "-Infinity"] {
        assert_eq!(fixed_from_key(&n(text).to_key()), None);
    }
    // Beyond i128: read by the general way only.
    assert_eq!(fixed_from_key(&n(&"9".repeat(40)).to_key()), None);
    assert_eq!(fixed_from_key(&n("0.000").to_key()), Some((0, 3)));
}
