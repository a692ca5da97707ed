//! The exit codes of every command, defined once. A CI job trusts them:
//! `Pass` only when a verdict was reached and every band and claim holds.
use std::fmt;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// A verdict was reached and everything holds (or a command that judges
    /// nothing did its work).
    Pass,
    /// A verdict was reached: something is out of band (a band, a claim, a
    /// group without a band, a differing pin or dataset).
    OutOfBand,
    /// The input or the environment is wrong (one line names the file, the
    /// field or the sample, and what was expected).
    Input,
    /// Stopped without a verdict (runs held by other workers or not yet
    /// finished, an unchecked `--partition` share, a worker that died): one
    /// line says why and which command gives the verdict.
    NoVerdict,
    /// Stopped by Ctrl-C / SIGTERM after checkpointing.
    Interrupted,
}

impl Exit {
    /// Every code, in order, with what it means (README and `--help` say the same).
    pub const ALL: [Exit; 5] = [
        Exit::Pass,
        Exit::OutOfBand,
        Exit::Input,
        Exit::NoVerdict,
        Exit::Interrupted,
    ];

    pub fn code(self) -> u8 {
        match self {
            Exit::Pass => 0,
            Exit::OutOfBand => 1,
            Exit::Input => 2,
            Exit::NoVerdict => 3,
            Exit::Interrupted => 130,
        }
    }

    /// The exit of a verdict that was reached.
    pub fn verdict(passed: bool) -> Exit {
        if passed {
            Exit::Pass
        } else {
            Exit::OutOfBand
        }
    }

    pub fn from_code(code: i32) -> Option<Exit> {
        Exit::ALL.into_iter().find(|e| i32::from(e.code()) == code)
    }

    /// One line for `--help` and the README's table.
    pub fn meaning(self) -> &'static str {
        match self {
            Exit::Pass => "a verdict was reached and every band and claim holds",
            Exit::OutOfBand => "a verdict was reached and something is out of band",
            Exit::Input => "the input or the environment is wrong",
            Exit::NoVerdict => {
                "stopped without a verdict (one line says why and which command gives it)"
            }
            Exit::Interrupted => "interrupted by Ctrl-C or SIGTERM after checkpointing",
        }
    }

    /// The worse of two exits of one command that judged several things:
    /// an input error, then no verdict, then out of band, then a pass.
    pub fn worst(self, other: Exit) -> Exit {
        let rank = |e: Exit| match e {
            Exit::Pass => 0,
            Exit::OutOfBand => 1,
            Exit::NoVerdict => 2,
            Exit::Interrupted => 3,
            Exit::Input => 4,
        };
        if rank(other) > rank(self) {
            other
        } else {
            self
        }
    }
}

/// Why a command stopped without a verdict, and the command that gives it.
/// Its `Display` is the one line every such path prints.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NoVerdict {
    pub why: String,
    pub then: String,
}

impl NoVerdict {
    pub fn new(why: impl Into<String>, then: impl Into<String>) -> Self {
        NoVerdict {
            why: why.into(),
            then: then.into(),
        }
    }
}

impl fmt::Display for NoVerdict {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        write!(
            f,
            "ddgsd-bench: no verdict (exit 3): {}. For the verdict: {}",
            self.why, self.then
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_distinct_and_round_trip() {
        for e in Exit::ALL {
            assert_eq!(Exit::from_code(i32::from(e.code())), Some(e));
        }
        assert_eq!(Exit::from_code(4), None);
        assert_eq!(Exit::Pass.worst(Exit::OutOfBand), Exit::OutOfBand);
        assert_eq!(Exit::NoVerdict.worst(Exit::OutOfBand), Exit::NoVerdict);
        assert_eq!(Exit::NoVerdict.worst(Exit::Input), Exit::Input);
        let line = NoVerdict::new("2 runs are held", "`ddgsd-bench check r/s`").to_string();
        assert_eq!(line.lines().count(), 1);
        assert!(line.contains("exit 3") && line.contains("ddgsd-bench check r/s"));
    }
}
