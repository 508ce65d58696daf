# Stand-in packages for stub-eval.nix: store-path-like attrsets; text-producing builders keep
# their text so tests can read it.
let
  fake = name: {
    type = "derivation";
    inherit name;
    outPath = "/nix/store/00000000000000000000000000000000-${name}";
  };
in
{
  plasma-agent = fake "plasma-agent";
  plasmagen = fake "plasmagen";
  ipxe = fake "ipxe";
  systemd = fake "systemd";
  util-linux = fake "util-linux";
  ipmitool = fake "ipmitool";
  kmod = fake "kmod";
  writeText = name: text: fake name // { inherit text; };
  writeShellScript = name: text: fake name // { inherit text; };
  runCommand = name: _env: script: fake name // { inherit script; };
  linkFarm = name: entries: fake name // { inherit entries; };
}
