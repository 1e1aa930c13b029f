//! The fixtures' trace files (`tests/c/trace.h`): one line per event, a
//! word and the numbers after it (the first is the writer's pid).

use std::fs;
use std::path::Path;

/// One trace line: a word and the numbers after it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    pub word: String,
    pub nums: Vec<i64>,
}

impl Event {
    /// The first number: the pid of the process that wrote the line.
    pub fn pid(&self) -> i64 {
        self.nums[0]
    }
}

#[derive(Debug, Default)]
pub struct Trace {
    pub events: Vec<Event>,
    pub raw: String,
}

impl Trace {
    pub fn read(p: &Path) -> Trace {
        let raw = fs::read_to_string(p).unwrap_or_default();
        let events = raw
            .lines()
            .map(|l| {
                let mut it = l.split_whitespace();
                let word = it.next().unwrap_or("").to_string();
                let nums = it
                    .map(|n| n.parse().unwrap_or_else(|_| panic!("bad trace line {l:?}")))
                    .collect();
                Event { word, nums }
            })
            .collect();
        Trace { events, raw }
    }

    pub fn with(&self, word: &str) -> Vec<&Event> {
        self.events.iter().filter(|e| e.word == word).collect()
    }

    pub fn count(&self, word: &str) -> usize {
        self.with(word).len()
    }

    /// The only line with `word`; panics unless there is exactly one.
    pub fn one(&self, word: &str) -> &Event {
        let v = self.with(word);
        assert_eq!(
            v.len(),
            1,
            "expected exactly one {word:?} line in the trace:\n{}",
            self.raw
        );
        v[0]
    }

    /// Words of the lines written by `pid`, in file order.
    pub fn words_of(&self, pid: i64) -> Vec<&str> {
        self.events
            .iter()
            .filter(|e| e.nums.first() == Some(&pid))
            .map(|e| e.word.as_str())
            .collect()
    }

    /// Index of the first line with `word` written by `pid`.
    pub fn index_of(&self, word: &str, pid: i64) -> Option<usize> {
        self.events
            .iter()
            .position(|e| e.word == word && e.nums.first() == Some(&pid))
    }
}
