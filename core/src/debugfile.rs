//! Separate debug files and ELF symbol tables (SPEC 8.1): pure code, bytes in.
//!
//! Shared by the library (which maps the files itself and hands the bytes
//! in) and the command (`check`, `why`). Nothing here opens a file, calls
//! libc or allocates per symbol: the caller decides how bytes are read.
//!
//! - [`Elf`]: a bounds-checked view of a 64-bit little-endian ELF file
//!   (section headers only: a debug file's sections have no loaded data).
//! - [`candidates`] / [`locate`]: where gdb looks for the debug file of an
//!   object, and the first one whose build-id matches.
//! - [`Symtab`]: name lookups (with the defining source file, the `STT_FILE`
//!   symbol that precedes a local one) in one pass, and address lookups.
//!
//! A corrupt or truncated file is an `Err` with a short reason, never a
//! panic: every read goes through `get`.

/// Where distributions install separate debug files.
pub const DEBUG_ROOT: &str = "/usr/lib/debug";

const SHT_SYMTAB: u32 = 2;
const SHT_NOTE: u32 = 7;
const SHT_NOBITS: u32 = 8;
const SHT_DYNSYM: u32 = 11;
const NT_GNU_BUILD_ID: u32 = 3;
const STT_OBJECT: u8 = 1;
const STT_FUNC: u8 = 2;
const STT_FILE: u8 = 4;
const STT_TLS: u8 = 6;
const STT_GNU_IFUNC: u8 = 10;
const SHN_UNDEF: u16 = 0;
const SHN_ABS: u16 = 0xfff1;
const SYM_SIZE: usize = 24;
const SHDR_SIZE: usize = 64;

fn u16_at(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_le_bytes(b.get(at..at + 2)?.try_into().ok()?))
}
fn u32_at(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(b.get(at..at + 4)?.try_into().ok()?))
}
fn u64_at(b: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_le_bytes(b.get(at..at + 8)?.try_into().ok()?))
}

/// The NUL-terminated string at `at` in a string table.
fn cstr_at(tab: &[u8], at: usize) -> Option<&[u8]> {
    let rest = tab.get(at..)?;
    let end = rest.iter().position(|&c| c == 0)?;
    Some(&rest[..end])
}

/// One section header.
#[derive(Debug, Clone, Copy)]
struct Shdr {
    name: u32,
    kind: u32,
    offset: u64,
    size: u64,
    link: u32,
    info: u32,
}

/// A 64-bit little-endian ELF file (x86-64, aarch64 ...), checked lazily.
pub struct Elf<'a> {
    data: &'a [u8],
    shoff: usize,
    shnum: usize,
    shstrndx: usize,
}

impl<'a> Elf<'a> {
    /// Check the header and that the section header table lies in the file.
    pub fn parse(data: &'a [u8]) -> Result<Elf<'a>, String> {
        if data.len() < 64 || !data.starts_with(b"\x7fELF") {
            return Err("not an ELF file".into());
        }
        if data[4] != 2 || data[5] != 1 {
            return Err("not a 64-bit little-endian ELF file".into());
        }
        let bad = || "truncated ELF header".to_string();
        let shoff = usize::try_from(u64_at(data, 0x28).ok_or_else(bad)?).map_err(|_| bad())?;
        let shentsize = usize::from(u16_at(data, 0x3a).ok_or_else(bad)?);
        let shnum = usize::from(u16_at(data, 0x3c).ok_or_else(bad)?);
        let shstrndx = usize::from(u16_at(data, 0x3e).ok_or_else(bad)?);
        if shnum == 0 {
            return Err("no section headers".into());
        }
        if shentsize != SHDR_SIZE {
            return Err("unexpected section header size".into());
        }
        let end = shnum
            .checked_mul(SHDR_SIZE)
            .and_then(|n| n.checked_add(shoff));
        if end.is_none_or(|e| e > data.len()) {
            return Err("truncated: section headers past the end of the file".into());
        }
        Ok(Elf {
            data,
            shoff,
            shnum,
            shstrndx,
        })
    }

    fn shdr(&self, i: usize) -> Option<Shdr> {
        if i >= self.shnum {
            return None;
        }
        let at = self.shoff + i * SHDR_SIZE;
        let d = self.data;
        Some(Shdr {
            name: u32_at(d, at)?,
            kind: u32_at(d, at + 4)?,
            offset: u64_at(d, at + 0x18)?,
            size: u64_at(d, at + 0x20)?,
            link: u32_at(d, at + 0x28)?,
            info: u32_at(d, at + 0x2c)?,
        })
    }

    /// The section's bytes; `None` if it has none in the file or they lie
    /// past its end.
    fn bytes(&self, s: &Shdr) -> Option<&'a [u8]> {
        if s.kind == SHT_NOBITS {
            return None;
        }
        let start = usize::try_from(s.offset).ok()?;
        let len = usize::try_from(s.size).ok()?;
        self.data.get(start..start.checked_add(len)?)
    }

    fn section_named(&self, name: &[u8]) -> Option<Shdr> {
        let names = self.bytes(&self.shdr(self.shstrndx)?)?;
        (0..self.shnum)
            .filter_map(|i| self.shdr(i))
            .find(|s| cstr_at(names, s.name as usize) == Some(name))
    }

    /// The GNU build-id note, if the file has one.
    pub fn build_id(&self) -> Option<&'a [u8]> {
        (0..self.shnum)
            .filter_map(|i| self.shdr(i))
            .filter(|s| s.kind == SHT_NOTE)
            .find_map(|s| build_id_in_notes(self.bytes(&s)?))
    }

    /// `.gnu_debuglink`: the debug file's name and the CRC-32 of its contents.
    pub fn debuglink(&self) -> Option<(&'a str, u32)> {
        let b = self.bytes(&self.section_named(b".gnu_debuglink")?)?;
        let name = cstr_at(b, 0)?;
        let crc_at = (name.len() + 1 + 3) & !3;
        let crc = u32_at(b, crc_at)?;
        let name = std::str::from_utf8(name).ok()?;
        (!name.is_empty() && !name.contains('/')).then_some((name, crc))
    }

    /// The static symbol table (`.symtab` and its string table), if any.
    pub fn symtab(&self) -> Result<Option<Symtab<'a>>, String> {
        self.table(SHT_SYMTAB)
    }

    /// The dynamic symbol table (`.dynsym`): the exported names, all a
    /// stripped object has. No `STT_FILE` symbols there.
    pub fn dynsym(&self) -> Result<Option<Symtab<'a>>, String> {
        self.table(SHT_DYNSYM)
    }

    fn table(&self, kind: u32) -> Result<Option<Symtab<'a>>, String> {
        let Some(s) = (0..self.shnum)
            .filter_map(|i| self.shdr(i))
            .find(|s| s.kind == kind)
        else {
            return Ok(None);
        };
        let syms = self
            .bytes(&s)
            .ok_or("truncated: symbol table past the end of the file")?;
        let strtab = self
            .shdr(s.link as usize)
            .and_then(|t| self.bytes(&t))
            .ok_or("truncated: string table past the end of the file")?;
        let n = syms.len() / SYM_SIZE;
        Ok(Some(Symtab {
            syms: &syms[..n * SYM_SIZE],
            strtab,
            first_global: (s.info as usize).min(n),
        }))
    }
}

/// The GNU build-id in a run of ELF notes (4-byte aligned).
pub fn build_id_in_notes(mut b: &[u8]) -> Option<&[u8]> {
    let align = |n: usize| (n + 3) & !3;
    while b.len() >= 12 {
        let namesz = u32_at(b, 0)? as usize;
        let descsz = u32_at(b, 4)? as usize;
        let kind = u32_at(b, 8)?;
        let name = b.get(12..12usize.checked_add(namesz)?)?;
        let desc_at = 12 + align(namesz);
        let desc = b.get(desc_at..desc_at.checked_add(descsz)?)?;
        if kind == NT_GNU_BUILD_ID && name == b"GNU\0" {
            return Some(desc);
        }
        b = b.get(desc_at + align(descsz)..)?;
    }
    None
}

/// Lower-case hex of a build-id.
pub fn hex(id: &[u8]) -> String {
    id.iter().map(|b| format!("{b:02x}")).collect()
}

/// Where gdb looks for the debug file of the object at `object_path`, in
/// order: `/usr/lib/debug/.build-id/NN/REST.debug`, then the debuglink name
/// in the object's directory, its `.debug/`, and `/usr/lib/debug/` + the
/// object's directory.
pub fn candidates(
    object_path: &str,
    build_id: Option<&[u8]>,
    debuglink: Option<&str>,
) -> Vec<String> {
    let mut out = Vec::new();
    if let Some(id) = build_id.filter(|id| id.len() >= 2) {
        out.push(format!(
            "{DEBUG_ROOT}/.build-id/{:02x}/{}.debug",
            id[0],
            hex(&id[1..])
        ));
    }
    if let Some(link) = debuglink {
        let dir = match object_path.rfind('/') {
            Some(0) => "",
            Some(i) => &object_path[..i],
            None => ".",
        };
        out.push(format!("{dir}/{link}"));
        out.push(format!("{dir}/.debug/{link}"));
        if dir.starts_with('/') {
            out.push(format!("{DEBUG_ROOT}{dir}/{link}"));
        }
    }
    out
}

/// What the object says about its debug file.
#[derive(Debug, Clone, Copy, Default)]
pub struct Wanted<'a> {
    pub build_id: Option<&'a [u8]>,
    pub debuglink: Option<(&'a str, u32)>,
}

/// The result of [`locate`].
pub enum Located<B> {
    /// The debug file, checked: its build-id (or, when the object has none,
    /// its CRC) matches.
    Found { path: String, data: B },
    /// No usable debug file. `rejected` lists the files that exist but were
    /// refused, with the reason (another build-id, corrupt, truncated).
    NotFound { rejected: Vec<(String, String)> },
}

/// Find the debug file of an object. `open` reads a candidate (`None`: no
/// such file); the first candidate that is a valid ELF file with a symbol
/// table and the object's build-id is returned. An object without a
/// build-id is matched through its debuglink's CRC-32 instead.
pub fn locate<B: AsRef<[u8]>>(
    object_path: &str,
    wanted: Wanted,
    mut open: impl FnMut(&str) -> Option<B>,
) -> Located<B> {
    let mut rejected = Vec::new();
    let paths = candidates(object_path, wanted.build_id, wanted.debuglink.map(|d| d.0));
    for path in paths {
        let Some(data) = open(&path) else { continue };
        match check(data.as_ref(), wanted) {
            Ok(()) => return Located::Found { path, data },
            Err(why) => rejected.push((path, why)),
        }
    }
    Located::NotFound { rejected }
}

/// Is `data` the debug file `wanted` describes?
pub fn check(data: &[u8], wanted: Wanted) -> Result<(), String> {
    let elf = Elf::parse(data)?;
    match (wanted.build_id, elf.build_id()) {
        (Some(want), Some(got)) if want == got => {}
        (Some(want), Some(got)) => {
            return Err(format!(
                "build-id {} differs from the object's {}",
                hex(got),
                hex(want)
            ))
        }
        (Some(_), None) => return Err("no build-id".into()),
        (None, _) => match wanted.debuglink {
            Some((_, crc)) if crc32(data) == crc => {}
            _ => return Err("CRC differs from the object's debuglink".into()),
        },
    }
    match elf.symtab()? {
        Some(_) => Ok(()),
        None => Err("no symbol table".into()),
    }
}

/// CRC-32 (IEEE, as `.gnu_debuglink` uses it).
pub fn crc32(data: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in data {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = (crc >> 1) ^ (0xedb8_8320 & (crc & 1).wrapping_neg());
        }
    }
    !crc
}

/// What kind of thing a symbol is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SymKind {
    Object,
    Func,
    Tls,
    Other,
}

/// A symbol table: `.symtab` entries and their string table.
#[derive(Clone, Copy)]
pub struct Symtab<'a> {
    syms: &'a [u8],
    strtab: &'a [u8],
    /// Index of the first global symbol: no `STT_FILE` applies from there.
    first_global: usize,
}

/// One name to look up: `name`, or `name` defined in the source file `file`.
#[derive(Debug, Clone, Copy)]
pub struct Query<'q> {
    pub file: Option<&'q str>,
    pub name: &'q str,
}

/// A symbol found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SymHit {
    /// The link-time address (add the load bias).
    pub value: u64,
    pub size: u64,
    /// The source file (the `STT_FILE` before a local symbol); `None` for
    /// a global, or a local that no named file precedes.
    pub file: Option<String>,
    pub kind: SymKind,
}

/// The answer for one [`Query`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Found {
    One(SymHit),
    Missing,
    /// Several definitions at different addresses: their source files
    /// (`"?"` where no file is known), sorted.
    Ambiguous(Vec<String>),
}

/// One raw symbol entry.
struct Entry {
    name: u32,
    kind: u8,
    shndx: u16,
    value: u64,
    size: u64,
}

impl<'a> Symtab<'a> {
    /// The number of entries.
    pub fn len(&self) -> usize {
        self.syms.len() / SYM_SIZE
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn entry(&self, i: usize) -> Option<Entry> {
        let at = i * SYM_SIZE;
        let s = self.syms.get(at..at + SYM_SIZE)?;
        Some(Entry {
            name: u32_at(s, 0)?,
            kind: s[4] & 0xf,
            shndx: u16_at(s, 6)?,
            value: u64_at(s, 8)?,
            size: u64_at(s, 16)?,
        })
    }

    fn name_is(&self, at: u32, name: &[u8]) -> bool {
        let at = at as usize;
        self.strtab.get(at..at + name.len()) == Some(name)
            && self.strtab.get(at + name.len()) == Some(&0)
    }

    /// The string at `at` is `name.N`, N one or more digits.
    fn name_numbered(&self, at: u32, name: &[u8]) -> bool {
        let at = at as usize;
        if self.strtab.get(at..at + name.len()) != Some(name)
            || self.strtab.get(at + name.len()) != Some(&b'.')
        {
            return false;
        }
        match cstr_at(self.strtab, at + name.len() + 1) {
            Some(n) => !n.is_empty() && n.iter().all(u8::is_ascii_digit),
            None => false,
        }
    }

    fn text(&self, at: u32) -> Option<&'a str> {
        std::str::from_utf8(cstr_at(self.strtab, at as usize)?).ok()
    }

    /// Look every query up in one pass over the table. Only definitions
    /// count (not undefined or absolute symbols, not files or sections);
    /// aliases at one address count once.
    pub fn lookup(&self, queries: &[Query]) -> Vec<Found> {
        self.lookup_inner(queries, false)
    }

    /// Like [`Symtab::lookup`], and a query for `NAME` also takes the
    /// symbol `NAME.N` (N digits): how GCC names a function-local static,
    /// with an N that changes between builds.
    pub fn lookup_numbered(&self, queries: &[Query]) -> Vec<Found> {
        self.lookup_inner(queries, true)
    }

    /// Like [`Symtab::lookup_numbered`] (when `numbered`) or
    /// [`Symtab::lookup`], for variables only (`STT_OBJECT`, `STT_TLS`):
    /// the symbols a lock or zero action can name, a fifth of a C
    /// library's table.
    pub fn lookup_data(&self, queries: &[Query], numbered: bool) -> Vec<Found> {
        self.lookup_inner_kinds(queries, numbered, true)
    }

    fn lookup_inner(&self, queries: &[Query], numbered: bool) -> Vec<Found> {
        self.lookup_inner_kinds(queries, numbered, false)
    }

    /// One pass over the table. Per entry: its type byte, then (for a
    /// candidate type) one table lookup by the name's first byte and an
    /// 8-byte prefix compare per distinct name with that first byte; the
    /// full compare and the source file only for the few that pass.
    fn lookup_inner_kinds(&self, queries: &[Query], numbered: bool, data_only: bool) -> Vec<Found> {
        let mut hits: Vec<Vec<SymHit>> = vec![Vec::new(); queries.len()];
        // Distinct names, their 8-byte prefix and mask, and their queries.
        let mut names: Vec<(&[u8], u64, u64, Vec<usize>)> = Vec::new();
        for (qi, q) in queries.iter().enumerate() {
            let n = q.name.as_bytes();
            match names.iter_mut().find(|(m, ..)| *m == n) {
                Some(e) => e.3.push(qi),
                None => {
                    let k = n.len().min(8);
                    let mut b = [0u8; 8];
                    b[..k].copy_from_slice(&n[..k]);
                    let mask = if k == 8 {
                        u64::MAX
                    } else {
                        (1u64 << (8 * k)) - 1
                    };
                    names.push((n, u64::from_le_bytes(b), mask, vec![qi]));
                }
            }
        }
        let mut by_first: Vec<Vec<usize>> = vec![Vec::new(); 256];
        for (ni, (n, ..)) in names.iter().enumerate() {
            if let Some(&c) = n.first() {
                by_first[usize::from(c)].push(ni);
            }
        }
        let mut file: Option<u32> = None;
        let first_global = self.first_global;
        for (i, c) in self.syms.chunks_exact(SYM_SIZE).enumerate() {
            // c is 24 bytes: name u32, info u8, other u8, shndx u16, value, size.
            let ty = c[4] & 0xf;
            if i == first_global {
                file = None;
            }
            let name_at = u32::from_le_bytes([c[0], c[1], c[2], c[3]]);
            if ty == STT_FILE {
                file = Some(name_at);
                continue;
            }
            let kind = match ty {
                STT_OBJECT => SymKind::Object,
                STT_TLS => SymKind::Tls,
                STT_FUNC | STT_GNU_IFUNC if !data_only => SymKind::Func,
                0 if !data_only => SymKind::Other,
                _ => continue,
            };
            let nm = name_at as usize;
            let Some(&first) = self.strtab.get(nm) else {
                continue;
            };
            let cands = &by_first[usize::from(first)];
            if cands.is_empty() {
                continue;
            }
            let word = match self.strtab.get(nm..nm + 8) {
                Some(b) => u64::from_le_bytes(b.try_into().unwrap_or([0; 8])),
                None => {
                    let mut b = [0u8; 8];
                    for (k, c) in self.strtab[nm..].iter().take(8).enumerate() {
                        b[k] = *c;
                    }
                    u64::from_le_bytes(b)
                }
            };
            for &ni in cands {
                let (name, pre, mask, qs) = &names[ni];
                if word & mask != *pre {
                    continue;
                }
                let nm32 = nm as u32;
                if !(self.name_is(nm32, name) || numbered && self.name_numbered(nm32, name)) {
                    continue;
                }
                let Some(e) = self.entry(i) else { continue };
                if e.shndx == SHN_UNDEF || e.shndx == SHN_ABS {
                    continue;
                }
                let f = file
                    .and_then(|f| cstr_at(self.strtab, f as usize))
                    .filter(|f| !f.is_empty());
                let f_base = f.map(basename);
                for &qi in qs {
                    if let Some(want) = queries[qi].file {
                        let want = want.as_bytes();
                        let same = match (f, f_base) {
                            (Some(f), Some(b)) => f == want || b == want || basename(want) == f,
                            _ => false,
                        };
                        if !same {
                            continue;
                        }
                    }
                    if hits[qi].iter().any(|h| h.value == e.value) {
                        continue;
                    }
                    hits[qi].push(SymHit {
                        value: e.value,
                        size: e.size,
                        file: f.map(|f| String::from_utf8_lossy(f).into_owned()),
                        kind,
                    });
                }
            }
        }
        hits.into_iter()
            .map(|mut h| match h.len() {
                0 => Found::Missing,
                1 => Found::One(h.remove(0)),
                _ => {
                    let mut files: Vec<String> = h
                        .into_iter()
                        .map(|h| h.file.unwrap_or_else(|| "?".into()))
                        .collect();
                    files.sort();
                    Found::Ambiguous(files)
                }
            })
            .collect()
    }

    /// The symbol whose object or function contains the link-time address
    /// `addr`: its name, source file and the offset of `addr` in it.
    /// A sized symbol is preferred to a zero-sized one at the same place.
    pub fn at(&self, addr: u64) -> Option<AddrHit> {
        let mut best: Option<AddrHit> = None;
        let mut file: Option<u32> = None;
        for i in 0..self.len() {
            let e = self.entry(i)?;
            if i == self.first_global {
                file = None;
            }
            if e.kind == STT_FILE {
                file = Some(e.name);
                continue;
            }
            if !matches!(e.kind, STT_OBJECT | STT_FUNC | STT_TLS | STT_GNU_IFUNC)
                || e.shndx == SHN_UNDEF
                || addr < e.value
            {
                continue;
            }
            let off = addr - e.value;
            if off >= e.size.max(1) {
                continue;
            }
            if best.as_ref().is_some_and(|b| b.size >= e.size) {
                continue;
            }
            best = Some(AddrHit {
                name: self.text(e.name)?.to_string(),
                file: file
                    .and_then(|f| self.text(f))
                    .filter(|f| !f.is_empty())
                    .map(str::to_string),
                value: e.value,
                size: e.size,
                offset: off,
            });
        }
        best
    }
}

/// An address named by [`Symtab::at`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AddrHit {
    pub name: String,
    pub file: Option<String>,
    pub value: u64,
    pub size: u64,
    /// `addr - value`.
    pub offset: u64,
}

/// The last path component: a file symbol matches a config's `FILE` by
/// its whole text or by this (`stdlib/random.c` and `random.c` both name
/// `random.c`).
fn basename(p: &[u8]) -> &[u8] {
    match p.iter().rposition(|&c| c == b'/') {
        Some(i) => &p[i + 1..],
        None => p,
    }
}

#[cfg(test)]
#[path = "debugfile_tests.rs"]
mod tests;
