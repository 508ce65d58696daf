//! Property test: any string (without NUL, which Nix strings cannot hold) survives the Nix
//! escaper — the real evaluator reads back exactly the original.

mod common;

use plasmagen::render::nix;

/// Small deterministic PRNG (xorshift64*), so failures reproduce.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

const TRICKY: &[&str] = &[
    "\"", "\\", "$", "{", "}", "${", "$${", "\\${", "''", "''${", "'''", "\n", "\r", "\t", "\\n",
    "#", "/*", "*/", " ", "é", "€", "🦀", "\u{7f}", "\u{1}", "\u{2028}",
];

fn arbitrary(rng: &mut Rng) -> String {
    let len = rng.below(24);
    let mut s = String::new();
    for _ in 0..len {
        match rng.below(3) {
            0 => s.push_str(TRICKY[rng.below(TRICKY.len() as u64) as usize]),
            1 => s.push(char::from(b' ' + rng.below(95) as u8)),
            _ => {
                // Any Unicode scalar value except NUL.
                let c = loop {
                    if let Some(c) = char::from_u32(1 + rng.below(0x10FFFF) as u32) {
                        break c;
                    }
                };
                s.push(c);
            }
        }
    }
    s
}

#[test]
fn escaped_strings_evaluate_back_to_themselves() {
    let mut rng = Rng(0x5EED_1234_ABCD_0001);
    let mut samples: Vec<String> = TRICKY.iter().map(|s| s.to_string()).collect();
    samples.extend((0..600).map(|_| arbitrary(&mut rng)));
    let expr = format!(
        "[ {} ]",
        samples
            .iter()
            .map(|s| nix::string(s))
            .collect::<Vec<_>>()
            .join(" ")
    );
    let dir = tempfile::tempdir().unwrap();
    let back = common::nix_eval(dir.path(), &expr);
    let back: Vec<String> = serde_json::from_value(back).unwrap();
    assert_eq!(back.len(), samples.len());
    for (orig, got) in samples.iter().zip(&back) {
        assert_eq!(orig, got, "escaped as {}", nix::string(orig));
    }
}

#[test]
fn escaped_strings_parse_with_rnix_as_single_string_literals() {
    let mut rng = Rng(42);
    for _ in 0..2000 {
        let s = arbitrary(&mut rng);
        let lit = nix::string(&s);
        let root = rnix::Root::parse(&lit);
        assert!(root.errors().is_empty(), "{lit}: {:?}", root.errors());
        // An interpolation would show up as a node inside the string.
        let text = format!("{:#?}", root.syntax());
        assert!(
            !text.contains("NODE_INTERPOL"),
            "{lit} contains an interpolation"
        );
    }
}
