//! A local text generator for the generate page: no model, no network, and the same text for
//! the same prompt (the browser test recomputes it from this file to check the page's text).
//!
//! ```text
//! Tokens: "Quiet", " rivers", " borrow", " the", " lantern", ",", " and", ... ".", "\n\n", ...
//! ```
//!
//! Only `std`: the tests include this file as it is.

/// Words the sentences are made of.
const WORDS: &[&str] = &[
    "quiet",
    "rivers",
    "borrow",
    "the",
    "lantern",
    "of",
    "a",
    "patient",
    "city",
    "where",
    "every",
    "window",
    "keeps",
    "its",
    "own",
    "weather",
    "and",
    "nobody",
    "counts",
    "bridges",
    "small",
    "engines",
    "hum",
    "under",
    "bright",
    "gardens",
    "while",
    "letters",
    "travel",
    "slowly",
    "through",
    "copper",
    "wires",
    "toward",
    "distant",
    "harbors",
    "morning",
    "clocks",
    "forget",
    "names",
    "but",
    "remember",
    "songs",
    "old",
    "maps",
    "fold",
    "into",
    "paper",
    "birds",
    "that",
    "circle",
    "above",
    "stone",
    "towers",
    "green",
    "streets",
    "carry",
    "echoes",
    "from",
    "markets",
    "near",
    "sleeping",
    "mountains",
    "with",
    "silver",
    "roofs",
    "each",
    "evening",
    "tells",
    "story",
    "about",
    "careful",
    "travelers",
    "who",
    "listen",
];

/// The text's tokens for `prompt`, without end: a word with its leading space, a comma, a full
/// stop, or a paragraph break.
pub fn tokens(prompt: &str) -> Babble {
    Babble {
        state: seed(prompt),
        pending: Vec::new(),
        sentences: 0,
    }
}

/// The token iterator of [`tokens`].
#[derive(Debug, Clone)]
pub struct Babble {
    state: u64,
    /// The rest of the current sentence, last token first.
    pending: Vec<String>,
    sentences: u32,
}

impl Iterator for Babble {
    type Item = String;

    fn next(&mut self) -> Option<String> {
        if self.pending.is_empty() {
            self.sentence();
        }
        self.pending.pop()
    }
}

impl Babble {
    /// Queues the next sentence: 6 to 14 words, maybe a comma, a full stop, and a paragraph
    /// break after every fourth sentence.
    fn sentence(&mut self) {
        let len = 6 + self.below(9) as usize;
        let comma_after = 2 + self.below(len as u64 - 3) as usize;
        let mut tokens = Vec::with_capacity(len + 3);
        for n in 0..len {
            let word = WORDS[self.below(WORDS.len() as u64) as usize];
            let mut token = String::with_capacity(word.len() + 1);
            if n > 0 || self.sentences > 0 {
                token.push(' ');
            }
            if n == 0 {
                let mut chars = word.chars();
                token.extend(chars.next().map(|c| c.to_ascii_uppercase()));
                token.push_str(chars.as_str());
            } else {
                token.push_str(word);
            }
            tokens.push(token);
            if n + 1 == comma_after && self.below(2) == 0 {
                tokens.push(",".to_owned());
            }
        }
        tokens.push(".".to_owned());
        self.sentences += 1;
        if self.sentences == 4 {
            tokens.push("\n\n".to_owned());
            // The next paragraph starts without a space.
            self.sentences = 0;
        }
        tokens.reverse();
        self.pending = tokens;
    }

    /// A number in `0..n` (xorshift64*; `n` > 0).
    fn below(&mut self, n: u64) -> u64 {
        self.state ^= self.state >> 12;
        self.state ^= self.state << 25;
        self.state ^= self.state >> 27;
        self.state.wrapping_mul(0x2545_f491_4f6c_dd1d) % n
    }
}

/// FNV-1a of the prompt, never 0 (xorshift's fixed point).
fn seed(prompt: &str) -> u64 {
    let hash = prompt
        .bytes()
        .fold(0xcbf2_9ce4_8422_2325_u64, |hash, byte| {
            (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3)
        });
    hash.max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_prompt_gives_the_same_text_and_another_differs() {
        let text = |prompt: &str| tokens(prompt).take(300).collect::<String>();
        assert_eq!(text("a lighthouse"), text("a lighthouse"));
        assert_ne!(text("a lighthouse"), text("a harbor"));
        let sample = text("");
        assert!(sample.starts_with(char::is_uppercase), "{sample}");
        assert!(sample.contains(". ") && sample.contains("\n\n"), "{sample}");
        assert!(!sample.contains("  ") && !sample.contains('\r'));
    }
}
