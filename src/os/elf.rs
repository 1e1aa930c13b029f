//! The objects loaded in this process, and the static (`.symtab`) symbols
//! of those whose file on disk still has a symbol table.
//!
//! Parent side only, never in the child: this allocates, opens files and
//! takes the loader's lock (`dl_iterate_phdr`).
//!
//! A file on disk may differ from the object that was loaded from it (a
//! library upgraded while the program runs): its build-id, else its
//! loadable segments, must match the image in memory, or the file is not
//! used. Writing a lock or zeroing an object at an address taken from the
//! wrong file would corrupt memory.

use forkguard_core::debugfile;
use object::elf::{PF_W, PT_GNU_RELRO, PT_LOAD, PT_NOTE};
use object::read::elf::ElfFile64;
use object::{Endianness, Object, ObjectSegment};
use std::ffi::CStr;

/// One loaded object, as `dl_iterate_phdr` describes it.
pub struct Loaded {
    /// The loader's name for it; empty for the main program.
    pub name: String,
    /// The load bias: runtime address = bias + link-time address.
    pub bias: usize,
    /// `(runtime start, end, writable)` of each `PT_LOAD`; RELRO ranges
    /// (read-only once relocated) are cut out as not writable.
    pub segments: Vec<(usize, usize, bool)>,
    relro: Vec<(usize, usize)>,
    /// `(link-time vaddr, memsz, file offset)` of each `PT_LOAD`.
    loads: Vec<(u64, u64, u64)>,
    build_id: Option<Vec<u8>>,
}

impl Loaded {
    /// The file to read: the main program through `/proc/self/exe`.
    fn path(&self) -> &str {
        if self.name.is_empty() {
            "/proc/self/exe"
        } else {
            // A relative name is opened from the current directory; the
            // vDSO's name opens nothing. Either way the file must match
            // the object in memory (`same_object`).
            &self.name
        }
    }

    /// The GNU build-id of the image in memory, if it has one.
    pub fn build_id(&self) -> Option<&[u8]> {
        self.build_id.as_deref()
    }

    /// `[addr, addr + size)` lies in one of this object's segments.
    pub fn contains(&self, addr: usize, size: usize) -> bool {
        let end = addr.saturating_add(size.max(1));
        self.segments.iter().any(|&(s, e, _)| addr >= s && end <= e)
    }

    /// `[addr, addr + size)` is memory this process may write.
    pub fn writable(&self, addr: usize, size: usize) -> bool {
        let end = addr.saturating_add(size.max(1));
        let in_rw = self
            .segments
            .iter()
            .any(|&(s, e, w)| w && addr >= s && end <= e);
        let in_relro = self.relro.iter().any(|&(s, e)| addr < e && end > s);
        in_rw && !in_relro
    }
}

/// Every loaded object, in load order (the main program first).
pub fn loaded() -> Vec<Loaded> {
    unsafe extern "C" fn each(
        info: *mut libc::dl_phdr_info,
        _size: libc::size_t,
        out: *mut libc::c_void,
    ) -> libc::c_int {
        // SAFETY: glibc passes a valid info for the duration of the call;
        // out is the Vec given to dl_iterate_phdr below.
        let (info, out) = unsafe { (&*info, &mut *out.cast::<Vec<Loaded>>()) };
        let name = if info.dlpi_name.is_null() {
            String::new()
        } else {
            // SAFETY: dlpi_name is a NUL-terminated string owned by the loader.
            unsafe { CStr::from_ptr(info.dlpi_name) }
                .to_string_lossy()
                .into_owned()
        };
        let bias = info.dlpi_addr as usize;
        let phdrs: &[libc::Elf64_Phdr] = if info.dlpi_phdr.is_null() {
            &[]
        } else {
            // SAFETY: dlpi_phdr points at dlpi_phnum program headers of a
            // loaded object, mapped while the callback runs.
            unsafe { std::slice::from_raw_parts(info.dlpi_phdr, usize::from(info.dlpi_phnum)) }
        };
        let mut l = Loaded {
            name,
            bias,
            segments: Vec::new(),
            relro: Vec::new(),
            loads: Vec::new(),
            build_id: None,
        };
        for ph in phdrs {
            let start = bias.wrapping_add(ph.p_vaddr as usize);
            let end = start.wrapping_add(ph.p_memsz as usize);
            match ph.p_type {
                PT_LOAD => {
                    l.segments.push((start, end, ph.p_flags & PF_W != 0));
                    l.loads.push((ph.p_vaddr, ph.p_memsz, ph.p_offset));
                }
                PT_GNU_RELRO => l.relro.push((start, end)),
                PT_NOTE if l.build_id.is_none() => {
                    // SAFETY: a PT_NOTE segment of a loaded object lies inside
                    // one of its PT_LOAD segments, mapped and readable.
                    let notes = unsafe {
                        std::slice::from_raw_parts(start as *const u8, ph.p_memsz as usize)
                    };
                    l.build_id = build_id_in_notes(notes);
                }
                _ => {}
            }
        }
        out.push(l);
        0
    }
    let mut v: Vec<Loaded> = Vec::new();
    // SAFETY: the callback matches dl_iterate_phdr's contract and only
    // appends to v.
    unsafe { crate::os::clib::dl_iterate_phdr(Some(each), (&mut v as *mut Vec<Loaded>).cast()) };
    v
}

/// The GNU build-id in a run of ELF notes (4-byte aligned, native endian).
fn build_id_in_notes(mut b: &[u8]) -> Option<Vec<u8>> {
    let word = |b: &[u8], at: usize| -> Option<usize> {
        let s = b.get(at..at + 4)?;
        Some(u32::from_ne_bytes([s[0], s[1], s[2], s[3]]) as usize)
    };
    let align = |n: usize| (n + 3) & !3;
    while b.len() >= 12 {
        let (namesz, descsz, ty) = (word(b, 0)?, word(b, 4)?, word(b, 8)?);
        let name = b.get(12..12 + namesz)?;
        let desc_at = 12 + align(namesz);
        let desc = b.get(desc_at..desc_at + descsz)?;
        if ty == object::elf::NT_GNU_BUILD_ID as usize && name == b"GNU\0" {
            return Some(desc.to_vec());
        }
        b = b.get(desc_at + align(descsz)..)?;
    }
    None
}

/// A read-only private mapping of a whole file, unmapped on drop.
struct Mapped {
    ptr: *mut libc::c_void,
    len: usize,
}

impl Mapped {
    fn open(path: &str) -> Option<Mapped> {
        let file = std::fs::File::open(path).ok()?;
        let len = usize::try_from(file.metadata().ok()?.len()).ok()?;
        if len == 0 {
            return None;
        }
        // SAFETY: a fresh read-only private mapping of an open file; the
        // descriptor may be closed once mapped. (A file truncated under us
        // would fault, as would the program whose code is mapped from it.)
        let ptr = unsafe {
            crate::os::clib::mmap(
                core::ptr::null_mut(),
                len,
                libc::PROT_READ,
                libc::MAP_PRIVATE,
                std::os::fd::AsRawFd::as_raw_fd(&file),
                0,
            )
        };
        (ptr != libc::MAP_FAILED).then_some(Mapped { ptr, len })
    }

    fn bytes(&self) -> &[u8] {
        // SAFETY: ptr/len describe the live mapping made in `open`.
        unsafe { std::slice::from_raw_parts(self.ptr.cast::<u8>(), self.len) }
    }
}

impl AsRef<[u8]> for Mapped {
    fn as_ref(&self) -> &[u8] {
        self.bytes()
    }
}

impl Drop for Mapped {
    fn drop(&mut self) {
        // SAFETY: the mapping was made in `open` and nothing borrows it now.
        unsafe { crate::os::clib::munmap(self.ptr, self.len) };
    }
}

/// A static symbol, found.
pub struct StaticHit {
    pub addr: usize,
    pub size: usize,
}

/// Why the static symbol table gave no answer.
pub enum StaticMiss {
    /// No usable symbol table, or no such name in it; the note says why a
    /// debug file that exists was not used (another build-id, corrupt).
    NotFound(Option<String>),
    /// Found, but it cannot be used; the message says why.
    Unusable(String),
}

/// How far [`find_static_many`] looks.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Depth {
    /// The object's own `.symtab` only.
    Symtab,
    /// Its `.symtab`, then its separate debug file (SPEC 8.1).
    DebugFile,
}

/// What the separate debug file of an object gave.
pub struct Tables {
    /// One answer per query.
    pub found: Vec<debugfile::Found>,
    /// The debug file used, if any.
    pub debug_file: Option<String>,
    /// Debug files that exist but were refused, with the reason.
    pub refused: Vec<(String, String)>,
}

/// Look `name` (defined in the source file `file`, if given) up in the
/// `.symtab` of the file `obj` was loaded from, then in its debug file.
pub fn find_static(
    obj: &Loaded,
    name: &str,
    file: Option<&str>,
    depth: Depth,
) -> Result<StaticHit, StaticMiss> {
    let q = [debugfile::Query { file, name }];
    let t = find_static_many(obj, &q, depth, false, false).map_err(StaticMiss::NotFound)?;
    let note = || {
        t.refused
            .first()
            .map(|(p, why)| format!("debug file {p} not used: {why}"))
    };
    let shown = shown(obj);
    let spelled = match file {
        Some(f) => format!("{f}:{name}"),
        None => name.to_string(),
    };
    match t.found.into_iter().next() {
        Some(debugfile::Found::One(h)) => hit(obj, &h, &spelled),
        Some(debugfile::Found::Ambiguous(files)) => Err(StaticMiss::Unusable(format!(
            "{} static symbols named {name} in {shown}: ambiguous; name one as \"{}:FILE:{name}\" (FILE: {})",
            files.len(),
            lib_name(obj),
            files.join(", ")
        ))),
        _ => Err(StaticMiss::NotFound(note())),
    }
}

/// A found symbol, as a usable address in `obj`.
pub fn hit(obj: &Loaded, h: &debugfile::SymHit, spelled: &str) -> Result<StaticHit, StaticMiss> {
    let shown = shown(obj);
    if h.kind == debugfile::SymKind::Tls {
        return Err(StaticMiss::Unusable(format!(
            "{spelled} in {shown} is thread-local: not supported"
        )));
    }
    let addr = obj.bias.wrapping_add(h.value as usize);
    let size = h.size as usize;
    if !obj.contains(addr, size) {
        return Err(StaticMiss::Unusable(format!(
            "{spelled} in {shown} is not in a loaded segment"
        )));
    }
    Ok(StaticHit { addr, size })
}

fn shown(obj: &Loaded) -> &str {
    if obj.name.is_empty() {
        "the program"
    } else {
        obj.name.as_str()
    }
}

/// How a config names the object: its file name (`libc.so.6`).
fn lib_name(obj: &Loaded) -> &str {
    obj.name.rsplit('/').next().unwrap_or("PROGRAM")
}

/// Look several names up at once: in the object's `.symtab` (one pass),
/// and, for `Depth::DebugFile`, the ones still missing in its separate
/// debug file (one pass). `debug_only` skips the object's own table (the
/// C library is stripped); `numbered` looks for variables only and also
/// takes a function-local static `NAME.N` for `NAME` (see
/// `Symtab::lookup_data`). `Err` when the object's file cannot be read or
/// is not the one loaded.
pub fn find_static_many(
    obj: &Loaded,
    queries: &[debugfile::Query],
    depth: Depth,
    debug_only: bool,
    numbered: bool,
) -> Result<Tables, Option<String>> {
    let look = |t: &debugfile::Symtab, q: &[debugfile::Query]| {
        if numbered {
            t.lookup_data(q, true)
        } else {
            t.lookup(q)
        }
    };
    let map = Mapped::open(obj.path()).ok_or(None)?;
    let file = ElfFile64::<Endianness>::parse(map.bytes()).map_err(|_| None)?;
    if !same_object(obj, &file) {
        return Err(None);
    }
    let mut out = Tables {
        found: vec![debugfile::Found::Missing; queries.len()],
        debug_file: None,
        refused: Vec::new(),
    };
    let elf = debugfile::Elf::parse(map.bytes()).map_err(|_| None)?;
    if !debug_only {
        if let Ok(Some(t)) = elf.symtab() {
            out.found = look(&t, queries);
        }
    }
    if depth == Depth::Symtab || out.found.iter().all(|f| *f != debugfile::Found::Missing) {
        return Ok(out);
    }
    let wanted = debugfile::Wanted {
        build_id: obj.build_id.as_deref(),
        debuglink: elf.debuglink(),
    };
    let real = std::fs::canonicalize(obj.path())
        .map(|p| p.to_string_lossy().into_owned())
        .unwrap_or_else(|_| obj.path().to_string());
    match debugfile::locate(&real, wanted, Mapped::open) {
        debugfile::Located::Found { path, data } => {
            let dbg = debugfile::Elf::parse(data.bytes()).map_err(|_| None)?;
            if let Ok(Some(t)) = dbg.symtab() {
                let missing: Vec<usize> = (0..queries.len())
                    .filter(|&i| out.found.get(i) == Some(&debugfile::Found::Missing))
                    .collect();
                let qs: Vec<debugfile::Query> = missing
                    .iter()
                    .filter_map(|&i| queries.get(i).copied())
                    .collect();
                for (i, f) in missing.into_iter().zip(look(&t, &qs)) {
                    if let Some(slot) = out.found.get_mut(i) {
                        *slot = f;
                    }
                }
            }
            out.debug_file = Some(path);
        }
        debugfile::Located::NotFound { rejected } => out.refused = rejected,
    }
    Ok(out)
}

/// The file is the one the object was loaded from: same build-id when both
/// have one, else the same loadable segments.
fn same_object(obj: &Loaded, file: &ElfFile64<Endianness>) -> bool {
    if let (Some(mem), Ok(Some(disk))) = (&obj.build_id, file.build_id()) {
        return mem.as_slice() == disk;
    }
    let disk: Vec<(u64, u64, u64)> = file
        .segments()
        .map(|s| (s.address(), s.size(), s.file_range().0))
        .collect();
    !obj.loads.is_empty() && disk == obj.loads
}

/// The loaded object containing `addr`, if any.
pub fn object_at(objs: &[Loaded], addr: usize) -> Option<&Loaded> {
    objs.iter().find(|o| o.contains(addr, 1))
}

/// Does the loaded object `obj` answer to the name `lib` in a config
/// (`libfoo.so.1`, a full path, or the program's own name)? `loader_name`
/// is what `dlopen(lib, RTLD_NOLOAD)` found, which matches by soname.
pub fn matches(obj: &Loaded, lib: &str, loader_name: Option<&str>, exe: &str) -> bool {
    let name = if obj.name.is_empty() {
        exe
    } else {
        obj.name.as_str()
    };
    let base = name.rsplit('/').next().unwrap_or(name);
    name == lib || base == lib || (loader_name.is_some_and(|n| n == name) && !name.is_empty())
}

/// A symbol found by address ([`symbol_containing`]).
pub struct AddrName {
    pub name: String,
    /// The source file of a local (static) symbol: the `STT_FILE` before
    /// it in the table (SPEC 8.1's `OBJECT:FILE:NAME`); None for a global.
    pub file: Option<String>,
    /// Its runtime start.
    pub start: usize,
}

/// The symbol (function or variable) containing the runtime address `addr`
/// in `obj`'s file: its `.symtab`, else (a stripped object) its separate
/// debug file's (SPEC 8.1, found and checked as for `find_static_many`),
/// else its `.dynsym`; read with the debug-file code's one table reader.
/// Used to name locks and callers that have no dynamic symbol (`forkguard
/// audit`).
pub fn symbol_containing(obj: &Loaded, addr: usize) -> Option<AddrName> {
    let map = Mapped::open(obj.path())?;
    let file = ElfFile64::<Endianness>::parse(map.bytes()).ok()?;
    if !same_object(obj, &file) {
        return None;
    }
    let link = addr.wrapping_sub(obj.bias) as u64;
    let elf = debugfile::Elf::parse(map.bytes()).ok()?;
    let at = |t: Result<Option<debugfile::Symtab>, String>| t.ok().flatten()?.at(link);
    let hit = match elf.symtab() {
        Ok(Some(t)) => t.at(link),
        _ => debug_file_at(obj, &elf, link),
    }
    .or_else(|| at(elf.dynsym()))?;
    Some(AddrName {
        name: hit.name,
        file: hit.file,
        start: obj.bias.wrapping_add(hit.value as usize),
    })
}

/// The symbol containing the link-time address `link` in `obj`'s separate
/// debug file, if it has one that matches.
fn debug_file_at(obj: &Loaded, elf: &debugfile::Elf, link: u64) -> Option<debugfile::AddrHit> {
    let wanted = debugfile::Wanted {
        build_id: obj.build_id.as_deref(),
        debuglink: elf.debuglink(),
    };
    let real = std::fs::canonicalize(obj.path())
        .map(|p| p.to_string_lossy().into_owned())
        .unwrap_or_else(|_| obj.path().to_string());
    match debugfile::locate(&real, wanted, Mapped::open) {
        debugfile::Located::Found { data, .. } => {
            let dbg = debugfile::Elf::parse(data.bytes()).ok()?;
            dbg.symtab().ok().flatten()?.at(link)
        }
        debugfile::Located::NotFound { .. } => None,
    }
}
