//! Address -> symbol for the objects of the inspected process, through the
//! project's one debug-file lookup (`forkguard_core::debugfile`): the
//! object's own `.symtab`, else its separate debug file (build-id checked).

use super::objects::Object;
use forkguard_core::debugfile::{self, Elf, Found, Located, Query, Wanted};
use std::collections::HashMap;

/// A symbol that contains an address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sym {
    pub name: String,
    /// The source file (`STT_FILE`) that precedes it, for a local symbol.
    pub file: Option<String>,
    /// Link-time address and size.
    pub value: u64,
    pub size: u64,
    /// Several symbols of the object have this name: name it with `file`.
    pub ambiguous: bool,
}

/// The file whose symbol table names an object's addresses.
enum Table {
    /// The bytes of a file with a `.symtab` (the object or its debug file).
    Symtab(Vec<u8>),
    /// Only the object's `.dynsym`: exported names.
    Dynsym(Vec<u8>),
    /// None: the reason was noted.
    Missing,
}

/// Loads symbol tables on first use, once per object, and remembers what
/// could not be found (one note per object).
#[derive(Default)]
pub struct Names {
    tables: HashMap<String, Table>,
    /// Degradations to report: a missing or refused debug file.
    pub notes: Vec<String>,
}

impl Names {
    /// The symbol of `obj` containing link-time address `vaddr`.
    pub fn at(&mut self, obj: &Object, vaddr: u64) -> Option<Sym> {
        if !self.tables.contains_key(&obj.path) {
            let t = if obj.same_file == Some(false) {
                self.notes.push(format!(
                    "{}: the file on disk is not the object in memory (another build-id): its symbols are not named",
                    obj.path
                ));
                Table::Missing
            } else {
                self.load(obj)
            };
            self.tables.insert(obj.path.clone(), t);
        }
        let tab = match self.tables.get(&obj.path) {
            Some(Table::Symtab(data)) => Elf::parse(data).ok()?.symtab().ok()??,
            Some(Table::Dynsym(data)) => Elf::parse(data).ok()?.dynsym().ok()??,
            _ => return None,
        };
        let hit = tab.at(vaddr)?;
        let ambiguous = matches!(
            tab.lookup(&[Query {
                file: None,
                name: &hit.name
            }])
            .first(),
            Some(Found::Ambiguous(_))
        );
        Some(Sym {
            name: hit.name,
            file: hit.file,
            value: hit.value,
            size: hit.size,
            ambiguous,
        })
    }

    fn load(&mut self, obj: &Object) -> Table {
        if let Some(e) = &obj.error {
            self.notes.push(format!("{e}: its symbols are not named"));
            return Table::Missing;
        }
        let data = match std::fs::read(&obj.open_path) {
            Ok(d) => d,
            Err(e) => {
                self.notes.push(format!(
                    "{}: {}: its symbols are not named",
                    obj.path,
                    crate::launch::strip_os(&e)
                ));
                return Table::Missing;
            }
        };
        let (build_id, debuglink, has_symtab) = match Elf::parse(&data) {
            Ok(elf) => (
                elf.build_id().map(<[u8]>::to_vec),
                elf.debuglink().map(|(n, c)| (n.to_string(), c)),
                matches!(elf.symtab(), Ok(Some(t)) if !t.is_empty()),
            ),
            Err(e) => {
                self.notes.push(format!("{}: {e}", obj.path));
                return Table::Missing;
            }
        };
        if has_symtab {
            return Table::Symtab(data);
        }
        let wanted = Wanted {
            build_id: build_id.as_deref(),
            debuglink: debuglink.as_ref().map(|(n, c)| (n.as_str(), *c)),
        };
        match debugfile::locate(&obj.path, wanted, |p| std::fs::read(p).ok()) {
            Located::Found { data, .. } => Table::Symtab(data),
            Located::NotFound { rejected } => {
                let mut n = format!(
                    "{}: no symbol table and no debug file ({}): only its exported symbols are named",
                    obj.name,
                    install_hint(&obj.name)
                );
                for (path, why) in rejected {
                    n.push_str(&format!("; {path} refused: {why}"));
                }
                self.notes.push(n);
                Table::Dynsym(data)
            }
        }
    }
}

/// Which package has the debug file (Debian).
pub fn install_hint(object: &str) -> &'static str {
    if is_libc(object) {
        "install libc6-dbg"
    } else {
        "install its -dbg or -dbgsym package"
    }
}

/// glibc's own objects: the C library and the dynamic loader.
pub fn is_libc(object: &str) -> bool {
    object.starts_with("libc.so")
        || object.starts_with("ld-linux")
        || object.starts_with("libpthread.so")
        || object.starts_with("libdl.so")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::BufRead;

    /// This process's libc, as `why` would see it in another process.
    fn libc() -> Option<Object> {
        let maps = std::fs::File::open("/proc/self/maps").ok()?;
        let path = std::io::BufReader::new(maps)
            .lines()
            .map_while(Result::ok)
            .filter_map(|l| l.split_whitespace().nth(5).map(str::to_string))
            .find(|p| p.ends_with("/libc.so.6"))?;
        Some(Object::for_tests(&path))
    }

    #[test]
    fn exported_functions_without_a_debug_file() {
        let Some(obj) = libc() else {
            return;
        };
        let data = std::fs::read(&obj.open_path).expect("read libc");
        let elf = Elf::parse(&data).expect("libc is ELF");
        let dynsym = elf.dynsym().expect("dynsym").expect("libc has .dynsym");
        let q = [Query {
            file: None,
            name: "pthread_mutex_lock",
        }];
        let Found::One(hit) = dynsym.lookup(&q).remove(0) else {
            panic!("pthread_mutex_lock not in libc's .dynsym");
        };
        let mut names = Names::default();
        names
            .tables
            .insert(obj.path.clone(), Table::Dynsym(data.clone()));
        let sym = names.at(&obj, hit.value + 1).expect("named");
        assert!(sym.name.contains("pthread_mutex_lock"), "{sym:?}");
    }
}
