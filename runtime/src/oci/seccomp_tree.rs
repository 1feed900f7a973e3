//! A compact BPF program for a resolved OCI seccomp profile: per
//! architecture, a binary search over ranges of syscall numbers.
//!
//! libseccomp's program for docker's profile has one or two instructions per
//! syscall (855 for x86_64 and x86). Loading a filter costs the kernel time
//! in proportion to its length (the cBPF to eBPF conversion and the JIT, on
//! every container start): 0.43-0.46 ms for libseccomp's program, 0.12 ms
//! for a 7-instruction filter. The allowed syscalls of an architecture form
//! a few dozen runs of consecutive numbers, so a search over the runs, whose
//! nodes jump straight to shared returns, says the same in 265 instructions
//! (0.20-0.23 ms).
//!
//! [`compact`] builds that program and keeps it only if it decides exactly as
//! libseccomp's program does on every probe: every architecture the profile
//! names (and one it does not), every syscall number either program compares
//! with (and its neighbours), and for the syscalls whose arguments are
//! checked, argument words taken from the constants either program compares
//! with. Anything else (a profile shape this module does not build, an
//! instruction its interpreter does not know, one differing answer) keeps
//! libseccomp's program.

use std::collections::{BTreeMap, BTreeSet};

use libcontainer::oci_spec::runtime::{Arch, LinuxSeccomp, LinuxSeccompAction, LinuxSeccompOperator};
use libseccomp::{ScmpAction, ScmpArch, ScmpSyscall};

/// One classic BPF instruction, as `struct sock_filter`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Insn {
    pub code: u16,
    pub jt: u8,
    pub jf: u8,
    pub k: u32,
}

const LD_ABS: u16 = (libc::BPF_LD | libc::BPF_W | libc::BPF_ABS) as u16;
const JA: u16 = (libc::BPF_JMP | libc::BPF_JA) as u16;
const JEQ: u16 = (libc::BPF_JMP | libc::BPF_JEQ | libc::BPF_K) as u16;
const JGT: u16 = (libc::BPF_JMP | libc::BPF_JGT | libc::BPF_K) as u16;
const JGE: u16 = (libc::BPF_JMP | libc::BPF_JGE | libc::BPF_K) as u16;
const AND: u16 = (libc::BPF_ALU | libc::BPF_AND | libc::BPF_K) as u16;
const RET: u16 = (libc::BPF_RET | libc::BPF_K) as u16;

/// `struct seccomp_data` offsets
const OFF_NR: u32 = 0;
const OFF_ARCH: u32 = 4;
const OFF_ARGS: u32 = 16;

/// The kernel's AUDIT_ARCH_* of the architectures this module builds for.
const AUDIT_X86_64: u32 = 0xc000_003e;
const AUDIT_I386: u32 = 0x4000_0003;
const AUDIT_AARCH64: u32 = 0xc000_00b7;
const AUDIT_ARM: u32 = 0x4000_0028;
/// x32 system calls arrive as AUDIT_ARCH_X86_64 with this bit in the number.
const X32_SYSCALL_BIT: u32 = 0x4000_0000;

/// libseccomp's action for an architecture the filter does not name.
const BAD_ARCH: u32 = libc::SECCOMP_RET_KILL_THREAD;

pub fn to_bytes(prog: &[Insn]) -> Vec<u8> {
    let mut out = Vec::with_capacity(prog.len() * 8);
    for i in prog {
        out.extend_from_slice(&i.code.to_ne_bytes());
        out.push(i.jt);
        out.push(i.jf);
        out.extend_from_slice(&i.k.to_ne_bytes());
    }
    out
}

pub fn from_bytes(bytes: &[u8]) -> Vec<Insn> {
    bytes
        .chunks_exact(8)
        .map(|c| Insn {
            code: u16::from_ne_bytes([c[0], c[1]]),
            jt: c[2],
            jf: c[3],
            k: u32::from_ne_bytes([c[4], c[5], c[6], c[7]]),
        })
        .collect()
}

/// The compact program for `s` if it decides as libseccomp's `reference`
/// does on every probe; None otherwise (see the module's comment).
pub fn compact(s: &LinuxSeccomp, reference: &[Insn]) -> Option<Vec<Insn>> {
    match compact_or_why(s, reference) {
        Ok(prog) => Some(prog),
        Err(why) => {
            tracing::debug!("seccomp: keeping libseccomp's filter: {why}");
            None
        }
    }
}

fn compact_or_why(s: &LinuxSeccomp, reference: &[Insn]) -> Result<Vec<Insn>, String> {
    let prog = build(s)?;
    if prog.len() >= reference.len() {
        return Err(format!("{} instructions, libseccomp's {}", prog.len(), reference.len()));
    }
    let arches = known_arches(s).ok_or("an architecture not built here")?;
    same_decisions(&prog, reference, &arches).map_err(|e| format!("decides differently: {e}"))?;
    Ok(prog)
}

// ---------------------------------------------------------------- building

/// One comparison of a 64-bit syscall argument, as libseccomp reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Cond {
    index: u32,
    op: LinuxSeccompOperator,
    /// the value compared (for MASKED_EQ, `valueTwo`)
    datum: u64,
    /// MASKED_EQ's mask (`value`)
    mask: u64,
    /// whether the architecture's arguments are 64 bits wide; libseccomp
    /// compares only the low 32 bits on x86, x32 and arm
    wide: bool,
}

/// What a filter does with one syscall number of one architecture.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Decision {
    Ret(u32),
    /// `action` if every condition of any alternative holds, else `otherwise`
    Args {
        alternatives: Vec<Vec<Cond>>,
        action: u32,
        otherwise: u32,
    },
}

fn ret_value(a: LinuxSeccompAction, errno: Option<u32>) -> Option<u32> {
    // the action as the libseccomp compile reads it, in the kernel's words
    Some(match super::seccomp_bpf::action(a, errno).ok()? {
        ScmpAction::KillThread => libc::SECCOMP_RET_KILL_THREAD,
        ScmpAction::KillProcess => libc::SECCOMP_RET_KILL_PROCESS,
        ScmpAction::Trap => libc::SECCOMP_RET_TRAP,
        ScmpAction::Errno(e) => libc::SECCOMP_RET_ERRNO | (e as u32 & libc::SECCOMP_RET_DATA),
        ScmpAction::Trace(t) => libc::SECCOMP_RET_TRACE | u32::from(t),
        ScmpAction::Allow => libc::SECCOMP_RET_ALLOW,
        ScmpAction::Log => libc::SECCOMP_RET_LOG,
        // Notify: `action` refuses it (libcontainer's listener only)
        _ => return None,
    })
}

/// The architectures of the filter: (libseccomp's, the kernel's token).
/// x32 is not one of them: its calls arrive as x86_64's (see [`build`]).
fn known_arches(s: &LinuxSeccomp) -> Option<Vec<(ScmpArch, u32)>> {
    if !cfg!(target_endian = "little") {
        return None;
    }
    let native = ScmpArch::native();
    let mut out = Vec::new();
    let mut add = |a: ScmpArch| -> Option<()> {
        let token = match a {
            ScmpArch::X8664 => AUDIT_X86_64,
            ScmpArch::X86 => AUDIT_I386,
            ScmpArch::Aarch64 => AUDIT_AARCH64,
            ScmpArch::Arm => AUDIT_ARM,
            ScmpArch::X32 => return (native == ScmpArch::X8664).then_some(()),
            _ => return None,
        };
        if !out.iter().any(|(_, t)| *t == token) {
            out.push((a, token));
        }
        Some(())
    };
    add(native)?;
    for a in s.architectures().iter().flatten() {
        if *a != Arch::ScmpArchNative {
            add(super::seccomp_bpf::scmp_arch(*a).ok()?)?;
        }
    }
    Some(out)
}

/// Whether the filter has x32's calls (only with x86_64 native).
fn has_x32(s: &LinuxSeccomp) -> bool {
    s.architectures().iter().flatten().any(|a| *a == Arch::ScmpArchX32)
}

/// The decisions of one architecture, by syscall number; numbers not in
/// the map take the default action.
fn decisions(s: &LinuxSeccomp, arch: ScmpArch, default: u32) -> Result<BTreeMap<u32, Decision>, String> {
    // per number: the unconditional action, or the conditional rules' one
    let mut plain: BTreeMap<u32, u32> = BTreeMap::new();
    let mut conditional: BTreeMap<u32, (u32, Vec<Vec<Cond>>)> = BTreeMap::new();
    // calls x86 multiplexes (socket through socketcall, semop through ipc):
    // (the multiplexer's number, the action)
    let mut multiplexed: Vec<(u32, u32)> = Vec::new();
    let mut direct: Option<std::collections::HashMap<String, u32>> = None;
    for rule in s.syscalls().iter().flatten() {
        let act = ret_value(rule.action(), rule.errno_ret()).ok_or("a notify action")?;
        if act == default {
            continue;
        }
        let conds: Vec<Cond> = rule
            .args()
            .iter()
            .flatten()
            .map(|a| {
                let (datum, mask) = super::seccomp_bpf::compared(a);
                Cond {
                    index: a.index() as u32,
                    op: a.op(),
                    datum,
                    mask,
                    wide: !matches!(arch, ScmpArch::X86 | ScmpArch::X32 | ScmpArch::Arm),
                }
            })
            .collect();
        if conds.iter().any(|c| c.index > 5) {
            return Err("an argument index above 5".into());
        }
        let alternatives = if super::seccomp_bpf::repeats_an_index(rule.args().as_deref().unwrap_or_default()) {
            conds.into_iter().map(|c| vec![c]).collect()
        } else {
            vec![conds]
        };
        for name in rule.names() {
            // unknown here: skipped, as libseccomp's compile skips it
            let Ok(sc) = ScmpSyscall::from_name_by_arch(name, arch) else {
                continue;
            };
            let nr = match u32::try_from(i32::from(sc)) {
                Ok(nr) => nr,
                // libseccomp allows such a call through its multiplexer with
                // the first argument naming it, and under its own number
                // where the kernel has one. Built here only when the
                // multiplexer itself is allowed outright with the same action.
                Err(_) => {
                    // none on this architecture (chown32 on x86_64): no rule
                    let Some(mux) = ScmpSyscall::from_name_by_arch_rewrite(name, arch)
                        .ok()
                        .and_then(|m| u32::try_from(i32::from(m)).ok())
                    else {
                        continue;
                    };
                    multiplexed.push((mux, act));
                    let direct = direct.get_or_insert_with(|| direct_numbers(arch));
                    match direct.get(name.as_str()) {
                        Some(nr) => *nr,
                        None => continue,
                    }
                }
            };
            if alternatives == [Vec::<Cond>::new()] {
                match plain.get(&nr) {
                    Some(a) if *a != act => return Err(format!("{name}: two actions")),
                    _ => {}
                }
                plain.insert(nr, act);
            } else {
                let entry = conditional.entry(nr).or_insert((act, Vec::new()));
                if entry.0 != act {
                    return Err(format!("{name}: two actions"));
                }
                entry.1.extend(alternatives.iter().cloned());
            }
        }
    }
    if multiplexed.iter().any(|(mux, act)| plain.get(mux) != Some(act)) {
        return Err("a multiplexed call whose multiplexer is not allowed outright".into());
    }
    let mut out: BTreeMap<u32, Decision> = plain.iter().map(|(nr, a)| (*nr, Decision::Ret(*a))).collect();
    for (nr, (action, alternatives)) in conditional {
        match plain.get(&nr) {
            // an unconditional rule with the same action covers every argument
            Some(a) if *a == action => {}
            Some(_) => return Err(format!("syscall {nr}: two actions")),
            None => {
                out.insert(
                    nr,
                    Decision::Args {
                        alternatives,
                        action,
                        otherwise: default,
                    },
                );
            }
        }
    }
    Ok(out)
}

/// The calls of `arch` that have a number of their own, by name.
fn direct_numbers(arch: ScmpArch) -> std::collections::HashMap<String, u32> {
    (0..1024u32)
        .filter_map(|nr| {
            let name = ScmpSyscall::from(nr as i32).get_name_by_arch(arch).ok()?;
            Some((name, nr))
        })
        .collect()
}

/// Consecutive numbers [start, next start) with one decision, from 0 on;
/// `upper`: from this number on, this action, but for -1.
fn intervals(map: &BTreeMap<u32, Decision>, default: u32, upper: Option<(u32, u32)>) -> Vec<(u32, Decision)> {
    fn push(out: &mut Vec<(u32, Decision)>, start: u32, d: Decision) {
        if out.last().is_some_and(|(s, _)| *s == start) {
            out.pop();
        }
        if out.last().is_some_and(|(_, last)| *last == d) {
            return;
        }
        out.push((start, d));
    }
    let mut out: Vec<(u32, Decision)> = vec![(0, Decision::Ret(default))];
    for (nr, d) in map {
        if upper.is_some_and(|(from, _)| *nr >= from) {
            break;
        }
        push(&mut out, *nr, d.clone());
        if let Some(next) = nr.checked_add(1) {
            push(&mut out, next, Decision::Ret(default));
        }
    }
    if let Some((from, action)) = upper {
        push(&mut out, from, Decision::Ret(action));
        // libseccomp leaves -1 (what a tracer sets to skip a call) to the default
        push(&mut out, u32::MAX, Decision::Ret(default));
    }
    out
}

/// A program under construction: jumps to labels resolved at the end.
#[derive(Default)]
struct Asm {
    code: Vec<Insn>,
    /// (instruction, label, which field: 0 jt, 1 jf, 2 k of a JA)
    fixups: Vec<(usize, usize, u8)>,
    labels: Vec<Option<usize>>,
}

impl Asm {
    fn label(&mut self) -> usize {
        self.labels.push(None);
        self.labels.len() - 1
    }
    fn bind(&mut self, l: usize) {
        self.labels[l] = Some(self.code.len());
    }
    fn op(&mut self, code: u16, k: u32) {
        self.code.push(Insn { code, jt: 0, jf: 0, k });
    }
    /// conditional jump: to `t` if true, `f` if false (None: next instruction)
    fn jump(&mut self, code: u16, k: u32, t: Option<usize>, f: Option<usize>) {
        let at = self.code.len();
        self.op(code, k);
        if let Some(t) = t {
            self.fixups.push((at, t, 0));
        }
        if let Some(f) = f {
            self.fixups.push((at, f, 1));
        }
    }
    fn goto(&mut self, l: usize) {
        let at = self.code.len();
        self.op(JA, 0);
        self.fixups.push((at, l, 2));
    }
    fn finish(mut self) -> Option<Vec<Insn>> {
        for (at, l, field) in self.fixups {
            let target = self.labels[l]?;
            let off = target.checked_sub(at + 1)?;
            match field {
                0 => self.code[at].jt = u8::try_from(off).ok()?,
                1 => self.code[at].jf = u8::try_from(off).ok()?,
                _ => self.code[at].k = u32::try_from(off).ok()?,
            }
        }
        (self.code.len() <= libc::BPF_MAXINSNS as usize).then_some(self.code)
    }
}

/// The program for `s`: dispatch on the architecture, then on the number.
fn build(s: &LinuxSeccomp) -> Result<Vec<Insn>, String> {
    if s.listener_path().is_some() {
        return Err("a notify listener".into());
    }
    let default = ret_value(s.default_action(), s.default_errno_ret()).ok_or("a notify action")?;
    let arches = known_arches(s).ok_or("an architecture not built here")?;
    let mut asm = Asm::default();
    let blocks: Vec<usize> = arches.iter().map(|_| asm.label()).collect();
    asm.op(LD_ABS, OFF_ARCH);
    for ((_, token), block) in arches.iter().zip(&blocks) {
        asm.jump(JEQ, *token, None, None);
        // jeq token, 0, 1; ja block  (the block may be further than 255)
        let at = asm.code.len() - 1;
        asm.code[at].jf = 1;
        asm.goto(*block);
    }
    asm.op(RET, BAD_ARCH);
    // the argument checks, placed after every tree
    let mut pending: Vec<(usize, Decision)> = Vec::new();
    for ((arch, _), block) in arches.iter().zip(&blocks) {
        asm.bind(*block);
        asm.op(LD_ABS, OFF_NR);
        let mut map = decisions(s, *arch, default)?;
        let upper = if *arch == ScmpArch::X8664 {
            if has_x32(s) {
                for (nr, d) in decisions(s, ScmpArch::X32, default)? {
                    if nr & X32_SYSCALL_BIT == 0 {
                        return Err(format!("x32 call {nr} without x32's bit"));
                    }
                    map.insert(nr, d);
                }
                None
            } else {
                // libseccomp: x32's numbers in a filter without x32
                Some((X32_SYSCALL_BIT, BAD_ARCH))
            }
        } else {
            None
        };
        let iv = intervals(&map, default, upper);
        let mut rets = BTreeMap::new();
        // (a tree of one return starts at that return, right here)
        tree(&mut asm, &iv, &mut rets, &mut pending);
        for (k, label) in rets {
            asm.bind(label);
            asm.op(RET, k);
        }
    }
    for (label, d) in pending {
        asm.bind(label);
        let Decision::Args {
            alternatives,
            action,
            otherwise,
        } = d
        else {
            unreachable!("only argument checks are pending")
        };
        for alt in alternatives {
            let next = asm.label();
            for c in &alt {
                cond(&mut asm, c, next);
            }
            asm.op(RET, action);
            asm.bind(next);
        }
        asm.op(RET, otherwise);
    }
    asm.finish().ok_or_else(|| "a jump too far, or too long".into())
}

/// A binary search over `iv` (A holds the syscall number): the label of
/// its first instruction. Its nodes jump straight to the returns in `rets`
/// (placed after the tree by the caller) and to a jump to each argument check.
fn tree(
    asm: &mut Asm,
    iv: &[(u32, Decision)],
    rets: &mut BTreeMap<u32, usize>,
    pending: &mut Vec<(usize, Decision)>,
) -> usize {
    if let [(_, d)] = iv {
        return match d {
            Decision::Ret(k) => *rets.entry(*k).or_insert_with(|| asm.label()),
            Decision::Args { .. } => {
                let (here, check) = (asm.label(), asm.label());
                asm.bind(here);
                asm.goto(check);
                pending.push((check, d.clone()));
                here
            }
        };
    }
    let mid = iv.len() / 2;
    let here = asm.label();
    asm.bind(here);
    let node = asm.code.len();
    asm.op(JGE, iv[mid].0);
    let left = tree(asm, &iv[..mid], rets, pending);
    let right = tree(asm, &iv[mid..], rets, pending);
    asm.fixups.push((node, right, 0));
    asm.fixups.push((node, left, 1));
    here
}

/// Jumps to `fail` unless `c` holds; falls through when it does.
fn cond(asm: &mut Asm, c: &Cond, fail: usize) {
    let lo = OFF_ARGS + 8 * c.index;
    let hi = lo + 4;
    let (dhi, dlo) = ((c.datum >> 32) as u32, c.datum as u32);
    let ok = asm.label();
    use LinuxSeccompOperator as Op;
    if !c.wide {
        let (d, m) = (c.datum as u32, c.mask as u32);
        asm.op(LD_ABS, lo);
        let (code, to_fail_if) = match c.op {
            Op::ScmpCmpEq | Op::ScmpCmpMaskedEq => {
                if m != u32::MAX {
                    asm.op(AND, m);
                }
                (JEQ, false)
            }
            Op::ScmpCmpNe => (JEQ, true),
            Op::ScmpCmpGt => (JGT, false),
            Op::ScmpCmpGe => (JGE, false),
            Op::ScmpCmpLt => (JGE, true),
            Op::ScmpCmpLe => (JGT, true),
        };
        if to_fail_if {
            asm.jump(code, d, Some(fail), None);
        } else {
            asm.jump(code, d, None, Some(fail));
        }
        asm.bind(ok);
        return;
    }
    match c.op {
        Op::ScmpCmpEq | Op::ScmpCmpMaskedEq => {
            let (mhi, mlo) = ((c.mask >> 32) as u32, c.mask as u32);
            asm.op(LD_ABS, hi);
            if mhi != u32::MAX {
                asm.op(AND, mhi);
            }
            asm.jump(JEQ, dhi, None, Some(fail));
            asm.op(LD_ABS, lo);
            if mlo != u32::MAX {
                asm.op(AND, mlo);
            }
            asm.jump(JEQ, dlo, None, Some(fail));
        }
        Op::ScmpCmpNe => {
            asm.op(LD_ABS, hi);
            asm.jump(JEQ, dhi, None, Some(ok));
            asm.op(LD_ABS, lo);
            asm.jump(JEQ, dlo, Some(fail), None);
        }
        // a > d: hi > dhi, or hi == dhi and lo > dlo (>= for GE)
        Op::ScmpCmpGt | Op::ScmpCmpGe => {
            asm.op(LD_ABS, hi);
            asm.jump(JGT, dhi, Some(ok), None);
            asm.jump(JEQ, dhi, None, Some(fail));
            asm.op(LD_ABS, lo);
            let code = if c.op == Op::ScmpCmpGt { JGT } else { JGE };
            asm.jump(code, dlo, None, Some(fail));
        }
        // a < d is not a >= d; a <= d is not a > d
        Op::ScmpCmpLt | Op::ScmpCmpLe => {
            asm.op(LD_ABS, hi);
            asm.jump(JGT, dhi, Some(fail), None);
            asm.jump(JEQ, dhi, None, Some(ok));
            asm.op(LD_ABS, lo);
            let code = if c.op == Op::ScmpCmpLt { JGE } else { JGT };
            asm.jump(code, dlo, Some(fail), None);
        }
    }
    asm.bind(ok);
}

// --------------------------------------------------------------- checking

/// `struct seccomp_data` for the interpreter.
#[derive(Debug, Clone, Copy, Default)]
pub struct Data {
    pub nr: u32,
    pub arch: u32,
    pub ip: u64,
    pub args: [u64; 6],
}

impl Data {
    fn word(&self, off: u32) -> Option<u32> {
        let w = |v: u64, hi: bool| if hi { (v >> 32) as u32 } else { v as u32 };
        Some(match off {
            0 => self.nr,
            4 => self.arch,
            8 | 12 => w(self.ip, off == 12),
            16..=63 if off.is_multiple_of(4) => {
                let i = ((off - 16) / 8) as usize;
                w(self.args[i], (off - 16) % 8 == 4)
            }
            _ => return None,
        })
    }
}

/// What a program returns for `d`, and whether it read the arguments (or
/// the instruction pointer); Err for an instruction this interpreter does
/// not run. The subset is what seccomp programs are made of.
pub fn run(prog: &[Insn], d: &Data) -> Result<(u32, bool), String> {
    let (mut a, mut x, mut mem) = (0u32, 0u32, [0u32; 16]);
    let mut read_args = false;
    let mut pc = 0usize;
    for _ in 0..=prog.len() {
        let i = *prog.get(pc).ok_or("ran off the end")?;
        pc += 1;
        let class = u32::from(i.code) & 0x07;
        let src = if u32::from(i.code) & libc::BPF_X != 0 { x } else { i.k };
        match class {
            c if c == libc::BPF_LD => match u32::from(i.code) & 0xe0 {
                m if m == libc::BPF_ABS && u32::from(i.code) & 0x18 == libc::BPF_W => {
                    read_args |= i.k >= 8;
                    a = d.word(i.k).ok_or(format!("load of offset {}", i.k))?;
                }
                m if m == libc::BPF_IMM => a = i.k,
                m if m == libc::BPF_MEM => a = *mem.get(i.k as usize).ok_or("scratch index")?,
                _ => return Err(format!("load mode {:#x}", i.code)),
            },
            c if c == libc::BPF_LDX => match u32::from(i.code) & 0xe0 {
                m if m == libc::BPF_IMM => x = i.k,
                m if m == libc::BPF_MEM => x = *mem.get(i.k as usize).ok_or("scratch index")?,
                _ => return Err(format!("ldx mode {:#x}", i.code)),
            },
            c if c == libc::BPF_ST => *mem.get_mut(i.k as usize).ok_or("scratch index")? = a,
            c if c == libc::BPF_STX => *mem.get_mut(i.k as usize).ok_or("scratch index")? = x,
            c if c == libc::BPF_ALU => {
                a = match u32::from(i.code) & 0xf0 {
                    o if o == libc::BPF_ADD => a.wrapping_add(src),
                    o if o == libc::BPF_SUB => a.wrapping_sub(src),
                    o if o == libc::BPF_MUL => a.wrapping_mul(src),
                    o if o == libc::BPF_OR => a | src,
                    o if o == libc::BPF_AND => a & src,
                    o if o == libc::BPF_XOR => a ^ src,
                    o if o == libc::BPF_LSH => a.checked_shl(src).unwrap_or(0),
                    o if o == libc::BPF_RSH => a.checked_shr(src).unwrap_or(0),
                    o if o == libc::BPF_NEG => a.wrapping_neg(),
                    o => return Err(format!("alu op {o:#x}")),
                }
            }
            c if c == libc::BPF_JMP => {
                let op = u32::from(i.code) & 0xf0;
                if op == libc::BPF_JA {
                    pc += i.k as usize;
                    continue;
                }
                let taken = match op {
                    o if o == libc::BPF_JEQ => a == src,
                    o if o == libc::BPF_JGT => a > src,
                    o if o == libc::BPF_JGE => a >= src,
                    o if o == libc::BPF_JSET => a & src != 0,
                    o => return Err(format!("jump op {o:#x}")),
                };
                pc += usize::from(if taken { i.jt } else { i.jf });
            }
            c if c == libc::BPF_RET => {
                let v = match u32::from(i.code) & 0x18 {
                    0x10 => a,
                    _ => i.k,
                };
                return Ok((v, read_args));
            }
            c if c == libc::BPF_MISC => {
                if u32::from(i.code) & 0xf8 == libc::BPF_TXA {
                    a = x
                } else {
                    x = a
                }
            }
            _ => return Err(format!("class {class}")),
        }
    }
    Err("no return".into())
}

/// Every constant a program compares with or masks by.
fn constants(prog: &[Insn]) -> BTreeSet<u32> {
    prog.iter()
        .filter(|i| {
            let class = u32::from(i.code) & 0x07;
            (class == libc::BPF_JMP && u32::from(i.code) & 0xf0 != libc::BPF_JA) || class == libc::BPF_ALU
        })
        .map(|i| i.k)
        .collect()
}

/// Ok if `a` and `b` return the same for every probe (see the module's
/// comment); Err names the first probe where they differ.
pub fn same_decisions(a: &[Insn], b: &[Insn], arches: &[(ScmpArch, u32)]) -> Result<(), String> {
    let ks: BTreeSet<u32> = constants(a).union(&constants(b)).copied().collect();
    let mut words: BTreeSet<u32> = [0, 1, u32::MAX, X32_SYSCALL_BIT - 1, X32_SYSCALL_BIT].into();
    for k in &ks {
        words.extend([k.wrapping_sub(1), *k, k.wrapping_add(1)]);
    }
    let mut tokens: Vec<u32> = arches.iter().map(|(_, t)| *t).collect();
    tokens.push(0);
    for arch in tokens {
        for &nr in &words {
            let d = Data {
                nr,
                arch,
                ..Data::default()
            };
            let (ra, args_a) = run(a, &d)?;
            let (rb, args_b) = run(b, &d)?;
            if ra != rb {
                return Err(format!("arch {arch:#x} nr {nr}: {ra:#x} vs {rb:#x}"));
            }
            if args_a || args_b {
                args_agree(a, b, d, &words)?;
            }
        }
    }
    Ok(())
}

/// The two programs agree on the arguments of one syscall: each argument
/// word alone over `words`, then pairs of words of different arguments
/// drawn from a fixed sequence.
fn args_agree(a: &[Insn], b: &[Insn], base: Data, words: &BTreeSet<u32>) -> Result<(), String> {
    let check = |d: &Data| -> Result<(), String> {
        let (ra, _) = run(a, d)?;
        let (rb, _) = run(b, d)?;
        if ra != rb {
            return Err(format!(
                "arch {:#x} nr {} args {:x?}: {ra:#x} vs {rb:#x}",
                d.arch, d.nr, d.args
            ));
        }
        Ok(())
    };
    let set = |d: &mut Data, word: usize, v: u32| {
        let (i, hi) = (word / 2, word % 2 == 1);
        let cur = d.args[i];
        d.args[i] = if hi {
            (cur & 0xffff_ffff) | (u64::from(v) << 32)
        } else {
            (cur & !0xffff_ffff) | u64::from(v)
        };
    };
    let words: Vec<u32> = words.iter().copied().collect();
    for w in 0..12 {
        for &v in &words {
            let mut d = base;
            set(&mut d, w, v);
            check(&d)?;
        }
    }
    // both words of one argument, and two arguments together
    let mut seed = 0x9e37_79b9_7f4a_7c15u64;
    let mut next = || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    for _ in 0..4000 {
        let mut d = base;
        for _ in 0..3 {
            let w = (next() % 12) as usize;
            let v = words[(next() % words.len() as u64) as usize];
            set(&mut d, w, v);
        }
        check(&d)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests;
