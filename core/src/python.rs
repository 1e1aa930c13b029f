//! `[[python]]` (SPEC 8.7): Python code around the fork, from the config.
//!
//! Core checks everything that needs no interpreter: the keys, exactly one
//! of `call` and `code`, and `call`'s form `"module:attribute.path"`.
//! `code`'s syntax needs CPython's own compiler: `forkguard check` asks
//! `python3` (see the command), and the library reports a hook that does
//! not compile as a failed action when it registers it.

use crate::error::ConfigError;
use crate::plan::{Ctx, Loc};
use crate::raw::Phase;
use serde::Deserialize;
use toml::Spanned;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawPython {
    pub phase: Phase,
    pub call: Option<Spanned<String>>,
    pub code: Option<Spanned<String>>,
    #[serde(default)]
    pub optional: bool,
    pub programs: Option<Spanned<Vec<Spanned<String>>>>,
}

/// One validated `[[python]]` entry.
#[derive(Debug, Clone, PartialEq)]
pub struct PythonEntry {
    pub phase: Phase,
    pub what: PyWhat,
    /// A module that cannot be imported is not an error.
    pub optional: bool,
    /// Globs narrowing `settings.programs`; empty = no narrowing.
    pub programs: Vec<String>,
    /// Where the entry's table starts.
    pub loc: Loc,
    /// Where its `call` or `code` string starts (syntax errors point here).
    pub value_loc: Loc,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PyWhat {
    /// `module:attr.path`: `module` from `sys.modules`, else imported; the
    /// attribute path walked with `getattr`; the result called with no
    /// arguments.
    Call { module: String, attrs: String },
    /// Python statements, run in a namespace of the entry's own.
    Code(String),
}

impl PythonEntry {
    /// `python call myapp.db:engine.dispose()` / `python code "import gc; ..."`.
    pub fn describe(&self) -> String {
        match &self.what {
            PyWhat::Call { module, attrs } => format!("python call {module}:{attrs}()"),
            PyWhat::Code(c) => {
                let one: String = c.split_whitespace().collect::<Vec<_>>().join(" ");
                let short: String = one.chars().take(60).collect();
                let more = if short.len() < one.len() { "..." } else { "" };
                format!("python code {:?}", format!("{short}{more}"))
            }
        }
    }
}

/// A Python identifier, as far as it can be told without the interpreter
/// (letters, digits and `_`, not starting with a digit).
fn identifier(s: &str) -> bool {
    let mut c = s.chars();
    c.next().is_some_and(|f| f == '_' || f.is_alphabetic())
        && c.all(|x| x == '_' || x.is_alphanumeric())
}

fn dotted(s: &str) -> bool {
    s.split('.').all(identifier)
}

/// `"module.sub:attr.path"` into its two halves.
pub fn parse_call(s: &str) -> Result<(String, String), String> {
    let form = "call must be \"module:attribute.path\" (e.g. \"myapp.db:engine.dispose\")";
    let Some((module, attrs)) = s.split_once(':') else {
        return Err(format!("{form}, not {s:?}: no ':'"));
    };
    if !dotted(module) {
        return Err(format!(
            "{form}, not {s:?}: {module:?} is not a module name"
        ));
    }
    if !dotted(attrs) {
        return Err(format!(
            "{form}, not {s:?}: {attrs:?} is not an attribute path"
        ));
    }
    Ok((module.to_string(), attrs.to_string()))
}

pub(crate) fn python(cx: &Ctx, p: Spanned<RawPython>) -> Result<PythonEntry, ConfigError> {
    let span = p.span();
    let loc = cx.loc(span.clone());
    let p = p.into_inner();
    let (what, value_loc) = match (&p.call, &p.code) {
        (Some(_), Some(code)) => {
            return Err(cx.err(
                code.span(),
                "give either call or code in a [[python]] entry, not both",
            ))
        }
        (None, None) => return Err(cx.err(
            span,
            "a [[python]] entry needs call = \"module:attribute.path\" or code = \"statements\"",
        )),
        (Some(call), None) => {
            let (module, attrs) = parse_call(call.get_ref()).map_err(|m| cx.err(call.span(), m))?;
            (PyWhat::Call { module, attrs }, cx.loc(call.span()))
        }
        (None, Some(code)) => {
            let c = code.get_ref();
            if c.trim().is_empty() {
                return Err(cx.err(code.span(), "code is empty"));
            }
            if c.contains('\0') {
                return Err(cx.err(code.span(), "code contains a NUL byte"));
            }
            (PyWhat::Code(c.clone()), cx.loc(code.span()))
        }
    };
    Ok(PythonEntry {
        phase: p.phase,
        what,
        optional: p.optional,
        programs: crate::plan::narrow(cx, p.programs)?,
        loc,
        value_loc,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Plan;

    fn err(text: &str) -> String {
        Plan::parse("f.toml", text).unwrap_err().to_string()
    }

    #[test]
    fn call_and_code_entries_in_order() {
        let p = Plan::parse(
            "f",
            "version = 1\n[[python]]\nphase = \"child\"\ncall = \"myapp.db:engine.dispose\"\n\
             [[python]]\nphase = \"prepare\"\ncode = \"import gc; gc.freeze()\"\noptional = true\nprograms = [\"gunicorn\"]\n",
        )
        .unwrap();
        assert!(!p.is_empty());
        assert_eq!(p.python.len(), 2);
        let a = &p.python[0];
        assert_eq!(a.phase, Phase::Child);
        assert_eq!(
            a.what,
            PyWhat::Call {
                module: "myapp.db".into(),
                attrs: "engine.dispose".into()
            }
        );
        assert_eq!((a.loc.line, a.value_loc.line, a.value_loc.col), (2, 4, 8));
        let b = &p.python[1];
        assert_eq!(b.what, PyWhat::Code("import gc; gc.freeze()".into()));
        assert!(b.optional);
        assert_eq!(b.programs, vec!["gunicorn".to_string()]);
        assert_eq!(a.describe(), "python call myapp.db:engine.dispose()");
        assert_eq!(b.describe(), "python code \"import gc; gc.freeze()\"");
    }

    #[test]
    fn bad_entries_are_located() {
        let head = "version = 1\n[[python]]\nphase = \"child\"\n";
        for (body, want) in [
            (
                "call = \"m:f\"\ncode = \"pass\"\n",
                "5:8: give either call or code",
            ),
            ("optional = true\n", "2:1: a [[python]] entry needs call"),
            (
                "call = \"no-colon\"\n",
                "4:8: call must be \"module:attribute.path\"",
            ),
            ("call = \"nocolon\"\n", "no ':'"),
            ("call = \"m:\"\n", "is not an attribute path"),
            ("call = \":f\"\n", "is not a module name"),
            ("call = \"a b:f\"\n", "is not a module name"),
            ("call = \"m:f..g\"\n", "is not an attribute path"),
            ("call = \"m:f:g\"\n", "is not an attribute path"),
            ("call = \"1m:f\"\n", "is not a module name"),
            ("code = \"  \"\n", "4:8: code is empty"),
            ("code = \"x\\u0000\"\n", "code contains a NUL byte"),
            ("call = \"m:f\"\nwhen = 1\n", "5:1: unknown field `when`"),
            ("call = \"m:f\"\nprograms = []\n", "5:12: programs is empty"),
        ] {
            let e = err(&format!("{head}{body}"));
            assert!(e.contains(want), "{body:?}: {e}");
            assert!(e.starts_with("forkguard: f.toml:"), "{e}");
        }
        let e = err("version = 1\n[[python]]\nphase = \"later\"\ncall = \"m:f\"\n");
        assert!(e.contains("3:9: unknown variant `later`"), "{e}");
        let e = err("version = 1\n[[python]]\ncall = \"m:f\"\n");
        assert!(e.contains("missing field `phase`"), "{e}");
    }

    #[test]
    fn unicode_identifiers_pass() {
        assert!(parse_call("café:naïve_f").is_ok());
        assert!(parse_call("_m._n:_a.b2").is_ok());
    }
}
