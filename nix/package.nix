# One workspace crate as a Nix package. Every crate builds from the same source and lock file;
# `-p` picks the binary.
{
  lib,
  rustPlatform,
  pname,
  src,
  version,
  description,
}:
rustPlatform.buildRustPackage {
  inherit pname version src;

  cargoLock.lockFile = ../Cargo.lock;
  cargoBuildFlags = [
    "-p"
    pname
  ];

  # The workspace's tests need tools the build sandbox lacks (kea-dhcp4, nix-instantiate,
  # loopback servers); they run with `cargo test --workspace` in CI instead.
  doCheck = false;

  meta = {
    inherit description;
    license = lib.licenses.asl20;
    mainProgram = pname;
    platforms = lib.platforms.linux;
  };
}
