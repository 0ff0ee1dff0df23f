//! Kernel address → function name, from the kernel ELF's symbol table.
//!
//! The kernel is position-independent: the `ready` record carries `kernel_offset`, the load
//! offset, which is subtracted from a runtime address before the lookup.

use std::path::Path;

use object::{Object, ObjectSymbol, SymbolKind};

/// One function symbol (address as linked, i.e. before the load offset).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Sym {
    /// The start address.
    pub addr: u64,
    /// The size in bytes (0 if the ELF does not say).
    pub size: u64,
    /// Demangled, without the trailing hash.
    pub name: String,
}

/// A sorted table of function symbols.
#[derive(Clone, Debug, Default)]
pub struct Symbolizer {
    syms: Vec<Sym>,
}

impl Symbolizer {
    /// Builds a table from symbols (any order; names are demangled if mangled).
    pub fn from_symbols(mut syms: Vec<Sym>) -> Symbolizer {
        for s in &mut syms {
            s.name = demangle(&s.name);
        }
        syms.sort_by(|a, b| a.addr.cmp(&b.addr).then(b.size.cmp(&a.size)));
        syms.dedup_by_key(|s| s.addr);
        Symbolizer { syms }
    }

    /// Reads the FUNC symbols of an ELF image.
    pub fn from_elf(bytes: &[u8]) -> Result<Symbolizer, String> {
        let file = object::File::parse(bytes).map_err(|e| format!("cannot parse ELF: {e}"))?;
        let syms = file
            .symbols()
            .filter(|s| s.kind() == SymbolKind::Text && s.address() != 0)
            .filter_map(|s| {
                let name = s.name().ok()?;
                (!name.is_empty()).then(|| Sym {
                    addr: s.address(),
                    size: s.size(),
                    name: name.to_string(),
                })
            })
            .collect();
        Ok(Symbolizer::from_symbols(syms))
    }

    /// Reads the FUNC symbols of an ELF file.
    pub fn from_file(path: &Path) -> Result<Symbolizer, String> {
        let bytes =
            std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        Symbolizer::from_elf(&bytes).map_err(|e| format!("{}: {e}", path.display()))
    }

    /// No symbols at all.
    pub fn is_empty(&self) -> bool {
        self.syms.is_empty()
    }

    /// The number of function symbols.
    pub fn len(&self) -> usize {
        self.syms.len()
    }

    /// The function containing `addr` (a link-time address) and the offset into it: the
    /// nearest symbol at or below `addr`, unless `addr` lies past that symbol's known size.
    pub fn lookup(&self, addr: u64) -> Option<(&str, u64)> {
        let i = self.syms.partition_point(|s| s.addr <= addr);
        let s = self.syms.get(i.checked_sub(1)?)?;
        if s.size != 0 && addr >= s.addr.saturating_add(s.size) {
            return None;
        }
        Some((&s.name, addr - s.addr))
    }

    /// `name+0xoff` for a runtime address, given the kernel's load offset.
    ///
    /// With `return_address`, the lookup uses `addr - 1` so a call at the very end of a
    /// function (whose return address is the next function's first byte) is attributed right.
    pub fn describe(&self, addr: u64, kernel_offset: u64, return_address: bool) -> Option<String> {
        let link = addr.checked_sub(kernel_offset)?;
        let probe = if return_address {
            link.checked_sub(1)?
        } else {
            link
        };
        let (name, off) = self.lookup(probe)?;
        let off = off + (link - probe);
        Some(format!("{name}+{off:#x}"))
    }

    /// Just the function name for a runtime address.
    pub fn function(&self, addr: u64, kernel_offset: u64) -> Option<String> {
        let link = addr.checked_sub(kernel_offset)?;
        self.lookup(link).map(|(n, _)| n.to_string())
    }
}

fn demangle(name: &str) -> String {
    format!("{:#}", rustc_demangle::demangle(name))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table() -> Symbolizer {
        Symbolizer::from_symbols(vec![
            Sym {
                addr: 0x2000,
                size: 0x40,
                name: "_ZN6kernel5stack7recurse17h0123456789abcdefE".into(),
            },
            Sym {
                addr: 0x1000,
                size: 0x100,
                name: "_start".into(),
            },
            Sym {
                addr: 0x3000,
                size: 0,
                name: "_RNvNtCs1234_6kernel4trap10int3_entry".into(),
            },
        ])
    }

    #[test]
    fn nearest_preceding_function_with_offset_and_demangling() {
        let t = table();
        assert_eq!(t.lookup(0x1000), Some(("_start", 0)));
        assert_eq!(t.lookup(0x201c), Some(("kernel::stack::recurse", 0x1c)));
        assert_eq!(t.lookup(0x3050), Some(("kernel::trap::int3_entry", 0x50)));
        // Before the first symbol, and in the gap past a sized symbol: unknown.
        assert_eq!(t.lookup(0xfff), None);
        assert_eq!(t.lookup(0x1100), None);
        assert_eq!(t.lookup(0x2040), None);
    }

    #[test]
    fn describe_subtracts_the_load_offset() {
        let t = table();
        let off = 0xffff_8000_0000_0000;
        assert_eq!(
            t.describe(off + 0x201c, off, false).as_deref(),
            Some("kernel::stack::recurse+0x1c")
        );
        assert_eq!(
            t.function(off + 0x201c, off).as_deref(),
            Some("kernel::stack::recurse")
        );
        assert_eq!(t.describe(0x10, off, false), None);
        // A return address just past the end of `recurse` still belongs to it.
        assert_eq!(
            t.describe(off + 0x2040, off, true).as_deref(),
            Some("kernel::stack::recurse+0x40")
        );
        assert_eq!(t.describe(off + 0x2040, off, false), None);
    }

    #[test]
    fn garbage_is_not_an_elf() {
        assert!(Symbolizer::from_elf(b"nope").is_err());
    }
}
