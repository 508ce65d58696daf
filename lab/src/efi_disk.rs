//! A disk standing in for an installed UEFI system: GPT, one EFI System Partition (FAT) holding
//! `\EFI\BOOT\BOOTX64.EFI`, a minimal x86-64 EFI application that prints
//! [`LOCAL_DISK_BOOTED_UEFI`] on the console and halts. OVMF mirrors the console to the serial
//! port, so the marker lands in the machine's serial log.
//!
//! What this relies on (UEFI Specification 2.10 and the Microsoft PE/COFF specification):
//! - UEFI 2.1.1 "UEFI Images": a PE32+ image; PE/COFF "Optional Header" magic 0x20B, machine
//!   0x8664 (AMD64), subsystem 10 (IMAGE_SUBSYSTEM_EFI_APPLICATION). No base relocations and
//!   no IMAGE_FILE_RELOCS_STRIPPED flag: the code is position independent, so the loader may
//!   place it anywhere and has nothing to fix up.
//! - UEFI 2.3.4 "x64 Platforms": the entry point is `EFI_STATUS efi_main(EFI_HANDLE,
//!   EFI_SYSTEM_TABLE *)` in the Microsoft x64 convention: arguments in RCX, RDX, 32 bytes of
//!   shadow space reserved by the caller, RSP 16-byte aligned at every call.
//! - UEFI 4.3 "EFI System Table": `ConOut` at offset 0x40 (Hdr 24 bytes, FirmwareVendor,
//!   FirmwareRevision + padding, ConsoleInHandle, ConIn, ConsoleOutHandle, ConOut).
//! - UEFI 12.4 "Simple Text Output Protocol": `OutputString(This, CHAR16 *)` at offset 0x08
//!   (after `Reset`).
//! - UEFI 3.5.1.1 "Removable Media Boot Behavior": with no boot entry naming a file, the boot
//!   manager loads `\EFI\BOOT\BOOTX64.EFI` from the device's FAT file system; UEFI 5.3 (GPT)
//!   and 13.3 (ESP type GUID C12A7328-F81F-11D2-BA4B-00A0C93EC93B, `sgdisk` type ef00).

use std::path::Path;
use std::process::Command;

use crate::Result;
use crate::err;
use crate::tools::Tools;

/// Printed on the console (so on the serial port) by [`bootx64_efi`].
pub const LOCAL_DISK_BOOTED_UEFI: &str = "E2E-LOCAL-DISK-BOOTED-UEFI";

/// Where the image's single section starts in the file and in memory.
const FILE_ALIGN: usize = 0x200;
const SECTION_ALIGN: u32 = 0x1000;
/// The message's offset in the section, after the code.
const MSG_AT: usize = 0x20;

/// The EFI application, as the bytes of a PE32+ file: DOS stub header, PE signature, COFF
/// header, PE32+ optional header, one `.text` section with code and message.
pub fn bootx64_efi() -> Vec<u8> {
    #[rustfmt::skip]
    let code: [u8; 21] = [
        0x48, 0x83, 0xec, 0x28,             // sub rsp, 0x28 (shadow space, realigns RSP)
        0x48, 0x8b, 0x4a, 0x40,             // mov rcx, [rdx+0x40]  (SystemTable->ConOut)
        0x48, 0x8d, 0x15,                   // lea rdx, [rip+disp32] (the message)
        (MSG_AT - 15) as u8, 0, 0, 0,       //   disp32: from the next instruction (offset 15)
        0xff, 0x51, 0x08,                   // call [rcx+0x08]      (ConOut->OutputString)
        0xf4,                               // .halt: hlt
        0xeb, 0xfd,                         // jmp .halt
    ];
    let mut text = vec![0u8; FILE_ALIGN];
    text[..code.len()].copy_from_slice(&code);
    let msg: Vec<u8> = format!("{LOCAL_DISK_BOOTED_UEFI}\r\n\0")
        .encode_utf16()
        .flat_map(u16::to_le_bytes)
        .collect();
    text[MSG_AT..MSG_AT + msg.len()].copy_from_slice(&msg);

    let mut pe = vec![0u8; FILE_ALIGN];
    let put = |pe: &mut Vec<u8>, at: usize, bytes: &[u8]| {
        pe[at..at + bytes.len()].copy_from_slice(bytes);
    };
    let text_rva = SECTION_ALIGN;
    // DOS header: "MZ" and e_lfanew (where the PE signature is).
    put(&mut pe, 0, b"MZ");
    put(&mut pe, 0x3c, &0x40u32.to_le_bytes());
    put(&mut pe, 0x40, b"PE\0\0");
    // COFF file header.
    let coff = 0x44;
    put(&mut pe, coff, &0x8664u16.to_le_bytes()); // Machine: AMD64
    put(&mut pe, coff + 2, &1u16.to_le_bytes()); // NumberOfSections
    put(&mut pe, coff + 16, &240u16.to_le_bytes()); // SizeOfOptionalHeader (16 directories)
    put(&mut pe, coff + 18, &0x0022u16.to_le_bytes()); // EXECUTABLE_IMAGE | LARGE_ADDRESS_AWARE
    // PE32+ optional header.
    let opt = coff + 20;
    put(&mut pe, opt, &0x20bu16.to_le_bytes()); // Magic: PE32+
    put(&mut pe, opt + 4, &(FILE_ALIGN as u32).to_le_bytes()); // SizeOfCode
    put(&mut pe, opt + 16, &text_rva.to_le_bytes()); // AddressOfEntryPoint
    put(&mut pe, opt + 20, &text_rva.to_le_bytes()); // BaseOfCode
    put(&mut pe, opt + 24, &0x1000_0000u64.to_le_bytes()); // ImageBase (preferred only)
    put(&mut pe, opt + 32, &SECTION_ALIGN.to_le_bytes()); // SectionAlignment
    put(&mut pe, opt + 36, &(FILE_ALIGN as u32).to_le_bytes()); // FileAlignment
    put(&mut pe, opt + 56, &(2 * SECTION_ALIGN).to_le_bytes()); // SizeOfImage
    put(&mut pe, opt + 60, &(FILE_ALIGN as u32).to_le_bytes()); // SizeOfHeaders
    put(&mut pe, opt + 68, &10u16.to_le_bytes()); // Subsystem: EFI application
    put(&mut pe, opt + 72, &0x10000u64.to_le_bytes()); // SizeOfStackReserve
    put(&mut pe, opt + 80, &0x10000u64.to_le_bytes()); // SizeOfStackCommit
    put(&mut pe, opt + 108, &16u32.to_le_bytes()); // NumberOfRvaAndSizes, all empty
    // Section table: .text, readable and executable code.
    let sec = opt + 240;
    put(&mut pe, sec, b".text\0\0\0");
    put(&mut pe, sec + 8, &(FILE_ALIGN as u32).to_le_bytes()); // VirtualSize
    put(&mut pe, sec + 12, &text_rva.to_le_bytes()); // VirtualAddress
    put(&mut pe, sec + 16, &(FILE_ALIGN as u32).to_le_bytes()); // SizeOfRawData
    put(&mut pe, sec + 20, &(FILE_ALIGN as u32).to_le_bytes()); // PointerToRawData
    put(&mut pe, sec + 36, &0x6000_0020u32.to_le_bytes()); // CODE | EXECUTE | READ
    pe.extend_from_slice(&text);
    pe
}

/// Runs a disk tool; the error names the command and its output.
fn run(cmd: &mut Command) -> Result<()> {
    let out = cmd.output().map_err(|e| format!("{cmd:?}: {e}"))?;
    if !out.status.success() {
        return Err(err!(
            "{cmd:?} failed ({}):\n{}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    Ok(())
}

/// Writes a `bytes`-sized disk image at `image`: a GPT (sgdisk) with a 32 MiB EFI System
/// Partition from 1 MiB on, formatted FAT (mtools, working on the image at that offset), with
/// [`bootx64_efi`] as `\EFI\BOOT\BOOTX64.EFI`.
pub fn build(tools: &Tools, image: &Path, bytes: u64) -> Result<()> {
    const START: u64 = 2048; // sectors: 1 MiB, the usual alignment
    const SECTORS: u64 = 32 << 11; // 32 MiB
    if bytes < (START + SECTORS + 34) * 512 {
        return Err(err!("{} bytes is too small for the ESP", bytes));
    }
    let f = std::fs::File::create(image).map_err(|e| format!("{}: {e}", image.display()))?;
    f.set_len(bytes).map_err(|e| e.to_string())?;
    drop(f);
    run(Command::new(&tools.sgdisk)
        .arg(format!("--new=1:{START}:+{SECTORS}"))
        .args(["--typecode=1:ef00", "--change-name=1:ESP"])
        .arg(image))?;
    let efi = image.with_extension("BOOTX64.EFI");
    std::fs::write(&efi, bootx64_efi()).map_err(|e| format!("{}: {e}", efi.display()))?;
    // `img@@offset`: mtools' syntax for a file system inside an image.
    let fs = format!("{}@@{}", image.display(), START * 512);
    run(Command::new(&tools.mformat)
        .args([
            "-i",
            &fs,
            "-T",
            &SECTORS.to_string(),
            "-H",
            &START.to_string(),
        ])
        .args(["-v", "ESP", "::"]))?;
    run(Command::new(&tools.mmd).args(["-i", &fs, "::/EFI", "::/EFI/BOOT"]))?;
    run(Command::new(&tools.mcopy)
        .args(["-i", &fs])
        .arg(&efi)
        .arg("::/EFI/BOOT/BOOTX64.EFI"))?;
    Ok(())
}
