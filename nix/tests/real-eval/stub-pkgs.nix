# Stand-in for nixpkgs' package set (`pkgs`): only nixpkgs.lib is available here. A package is a
# derivation-shaped attribute set whose outPath is a fake store path, so "${pkgs.util-linux}/bin/x"
# evaluates to a string without building or copying anything. A package that is not listed
# fails with "attribute '<name>' missing" and the file that asked for it.
let
  fake = name: {
    type = "derivation";
    inherit name;
    outPath = "/nix/store/00000000000000000000000000000000-${name}";
  };
  names = [
    "bash"
    "bashInteractive"
    "coreutils"
    "cryptsetup"
    "dosfstools"
    "e2fsprogs"
    "iproute2"
    "ipxe"
    "kmod"
    "lvm2"
    "mdadm"
    "nftables"
    "openssh"
    "plasma-agent"
    "plasmagen"
    "shadow"
    "util-linux"
  ];
in
builtins.listToAttrs (map (name: { inherit name; value = fake name; }) names)
// {
  systemd = fake "systemd" // { withEfi = true; };
  stdenv.hostPlatform = {
    system = "x86_64-linux";
    isx86 = true;
    isx86_64 = true;
    isLinux = true;
  };
  writeText = name: text: fake name // { inherit text; };
  writeShellScript = name: text: fake name // { inherit text; };
  writeScript = name: text: fake name // { inherit text; };
  runCommand = name: _env: script: fake name // { inherit script; };
  linkFarm = name: entries: fake name // { inherit entries; };
}
