//! The objects mapped in a process (from `/proc/PID/maps` and their ELF
//! program headers): which object an address lies in, and at which
//! link-time address, `.bss` beyond the file's pages included.

use super::procfs::{Mapping, Process};
use object::elf::{PT_LOAD, PT_NOTE};
use object::read::elf::{ElfFile64, ProgramHeader};
use object::{Endianness, Object as _};

/// One object (program or library) mapped from a file.
#[derive(Debug, Clone)]
pub struct Object {
    /// The path in `/proc/PID/maps`.
    pub path: String,
    /// What to open to read it (the path, or `map_files/` when deleted).
    pub open_path: String,
    /// Its base name, as SPEC 8.4 names objects (`libc.so.6`, `myprog`).
    pub name: String,
    /// Runtime address = bias + link-time address.
    pub bias: u64,
    /// `(link-time vaddr, memsz)` of each `PT_LOAD`.
    loads: Vec<(u64, u64)>,
    /// The file on disk is the object in memory: `None` when its build-id
    /// could not be compared, `Some(false)` when they differ.
    pub same_file: Option<bool>,
    /// Why the file could not be read, if it could not.
    pub error: Option<String>,
}

impl Object {
    /// The link-time address of runtime address `addr`, when it lies in
    /// one of this object's segments.
    pub fn vaddr(&self, addr: u64) -> Option<u64> {
        let v = addr.checked_sub(self.bias)?;
        self.loads
            .iter()
            .any(|&(s, m)| v >= s && v < s.saturating_add(m))
            .then_some(v)
    }
}

#[cfg(test)]
impl Object {
    /// An object at bias 0 whose every address is in a segment.
    pub fn for_tests(path: &str) -> Object {
        Object {
            path: path.to_string(),
            open_path: path.to_string(),
            name: path.rsplit('/').next().unwrap_or(path).to_string(),
            bias: 0,
            loads: vec![(0, u64::MAX)],
            same_file: None,
            error: None,
        }
    }
}

/// Every file-backed object of a process.
#[derive(Debug, Default)]
pub struct Objects {
    pub list: Vec<Object>,
}

impl Objects {
    /// Reads the ELF headers of each file mapped in `maps` (once per path).
    pub fn new(proc: &Process, maps: &[Mapping]) -> Objects {
        let mut list: Vec<Object> = Vec::new();
        for m in maps.iter().filter(|m| m.is_file()) {
            if list.iter().any(|o| o.path == m.path) {
                continue;
            }
            let open_path = match m.path.strip_suffix(" (deleted)") {
                Some(_) => format!("/proc/{}/map_files/{:x}-{:x}", proc.pid, m.start, m.end),
                None => m.path.clone(),
            };
            let name = m
                .path
                .trim_end_matches(" (deleted)")
                .rsplit('/')
                .next()
                .unwrap_or("")
                .to_string();
            let mut o = Object {
                path: m.path.clone(),
                open_path,
                name,
                bias: 0,
                loads: Vec::new(),
                same_file: None,
                error: None,
            };
            if let Err(e) = read_headers(&mut o, proc, m) {
                o.error = Some(e);
            }
            list.push(o);
        }
        Objects { list }
    }

    /// The object `addr` lies in and the link-time address there.
    pub fn at(&self, addr: u64) -> Option<(&Object, u64)> {
        self.list.iter().find_map(|o| o.vaddr(addr).map(|v| (o, v)))
    }
}

/// Fills in the bias and segments from the file's program headers, using
/// `first` (the object's first mapping) to place it, and compares the
/// build-id note with the one in memory.
fn read_headers(o: &mut Object, proc: &Process, first: &Mapping) -> Result<(), String> {
    let data = std::fs::read(&o.open_path)
        .map_err(|e| format!("{}: {}", o.path, crate::launch::strip_os(&e)))?;
    let file = ElfFile64::<Endianness>::parse(&*data)
        .map_err(|_| format!("{}: not a 64-bit ELF file", o.path))?;
    let e = file.endian();
    let phdrs = file.elf_program_headers();
    let mut loads = Vec::new();
    let mut place = None;
    let mut notes = Vec::new();
    for ph in phdrs {
        let (vaddr, off, filesz, memsz) =
            (ph.p_vaddr(e), ph.p_offset(e), ph.p_filesz(e), ph.p_memsz(e));
        match ph.p_type(e) {
            PT_LOAD => {
                loads.push((vaddr, memsz));
                // The segment whose file range holds the mapping's offset:
                // link-time address of the mapping's start.
                let page_off = off & !0xfff;
                if place.is_none() && first.offset >= page_off && first.offset < off + filesz.max(1)
                {
                    place = Some((vaddr & !0xfff) + (first.offset - page_off));
                }
            }
            PT_NOTE => notes.push((vaddr, filesz)),
            _ => {}
        }
    }
    let start_vaddr =
        place.ok_or_else(|| format!("{}: no segment at its mapped offset", o.path))?;
    o.bias = first.start.wrapping_sub(start_vaddr);
    o.loads = loads;
    if let Ok(Some(id)) = file.build_id() {
        o.same_file = Some(notes.iter().any(|&(v, len)| {
            proc.read(o.bias.wrapping_add(v), len.min(4096) as usize)
                .map(|mem| mem.windows(id.len()).any(|w| w == id))
                .unwrap_or(true) // unreadable: trust the path
        }));
    }
    Ok(())
}
