# Step 2 of scripts/check-nix-real.sh: evaluates one generated node the way NixOS does, with the
# REAL module system of nixpkgs.lib (lib.evalModules):
#
#   modules     = the NixOS stand-ins (nixos/module-list.nix: the options our files and disko
#                 set, with their real types, the NixOS checks we rely on, and plasmagen's
#                 networkd contract)
#               + disko's real module.nix (so disko's _config merges into fileSystems, boot.*)
#               + this project's nix/modules/first-boot.nix (imported by the fleet flake)
#               + nodes/<fqdn>/configuration.nix (which imports profile, base, hardware,
#                 disko, boot and network)
#               + a stand-in declaration (lib/freeform.nix) for every defined option that is not
#                 modelled (lib/eval-with-stand-ins.nix: no freeform root, as in NixOS)
#   module args = config, options, lib, pkgs (a stub), modulesPath (nixos/ here) and what
#                 evalModules itself passes; no `inputs`, no `utils`, nothing else.
#
#   nix-instantiate --eval --strict --json nix/tests/real-eval/eval-node.nix \
#     --argstr nixpkgsLib /path/to/nixpkgs.lib/lib --argstr disko /path/to/disko \
#     --argstr flake /abs/out/flake --argstr fqdn node01.example.com
#
# Every modelled option that has a value is evaluated completely (deepSeq), so a type error
# anywhere in them aborts the evaluation with NixOS's own message. The result (JSON) is a
# summary of the node plus the failed assertions, the warnings, and the failures of this
# project's own checks (`checks`, prefixed "plasmacloud:"; see docs/nix-real-eval.md).
{
  nixpkgsLib,
  disko,
  flake,
  fqdn,
}:
let
  asPath = p: if builtins.isPath p then p else /. + p;
  lib = import (asPath nixpkgsLib);
  inherit (lib)
    all
    any
    attrNames
    attrValues
    concatLists
    concatMap
    elem
    filter
    hasPrefix
    isAttrs
    isOption
    mapAttrsToList
    optional
    showOption
    ;

  mirrorDir = toString ./nixos;

  flakeDir = asPath flake;
  nodeDir = flakeDir + "/nodes/${fqdn}";
  hostname = lib.head (lib.splitString "." fqdn);

  # firmware and disk layout as the inventory says (defaults as in the generator's reader)
  inventory = builtins.fromTOML (builtins.readFile (flakeDir + "/inventory.toml"));
  invNode = lib.findFirst (n: n.hostname == hostname) { } (inventory.nodes or [ ]);
  firmware = invNode.firmware or "uefi";
  layout = invNode.disk_layout or "single";

  pkgs = import ./stub-pkgs.nix;
  # The modules of a fleet node, as flake.nix's mkNode lists them (disko, first-boot, the node's
  # configuration.nix; plasmacloud-services' modules are not available and not modelled).
  nodeModules = [
    (asPath disko + "/module.nix")
    ../../modules/first-boot.nix
    (nodeDir + "/configuration.nix")
    {
      _file = "check-nix-real: stub pkgs";
      config._module.args.pkgs = pkgs;
    }
  ];
  mirror = import ./nixos/module-list.nix;

  # Two passes (lib/eval-with-stand-ins.nix): the definitions tell which unmodelled options
  # need a stand-in declaration; then the real evaluation, without a freeform root.
  evaluated = import ./lib/eval-with-stand-ins.nix {
    inherit lib mirror;
    modules = nodeModules;
    specialArgs.modulesPath = ./nixos;
    # swraid.nix: environment.etc."mdadm.conf"; network-interfaces.nix: networking.dhcpcd.enable
    mirrorUndeclared = [
      [ "environment" ]
      [
        "networking"
        "dhcpcd"
      ]
    ];
    # Under these prefixes every option name nixpkgs declares is known (stored copies cited in
    # nixos/*): a definition of any other name fails with NixOS's "does not exist" error.
    known = {
      "boot.loader.grub" = [
        "backgroundColor"
        "configurationLimit"
        "configurationName"
        "copyKernels"
        "default"
        "enableCryptodisk"
        "entryOptions"
        "extraConfig"
        "extraEntries"
        "extraEntriesBeforeNixOS"
        "extraFiles"
        "extraGrubInstallArgs"
        "extraInstallCommands"
        "extraPerEntryConfig"
        "extraPrepareConfig"
        "font"
        "fontSize"
        "forceInstall"
        "forcei686"
        "fsIdentifier"
        "gfxmodeBios"
        "gfxmodeEfi"
        "gfxpayloadBios"
        "gfxpayloadEfi"
        "splashImage"
        "splashMode"
        "storePath"
        "subEntryOptions"
        "theme"
        "timeoutStyle"
        "useOSProber"
        "users"
        "version"
        "zfsPackage"
        "zfsSupport"
      ];
      "boot.loader.efi" = [ ];
      "boot.swraid" = [ ];
      "boot.initrd.luks" = [
        "cryptoModules"
        "fido2Support"
        "forceLuksSupportInInitrd"
        "gpgSupport"
        "mitigateDMAAttacks"
        "yubikeySupport"
      ];
      "boot.initrd.network.ssh" = [ ];
      "networking.nftables" = [ ];
      "systemd.network" = [ "units" ];
      "boot.initrd.systemd.network" = [ "units" ];
    };
  };
  inherit (evaluated) eval unknownOptions;
  inherit (eval) config options;

  # --- evaluate every modelled option ------------------------------------------------------
  # Options declared by the mirror (and first-boot.nix) that have a value. Not forced:
  # system.build (disko's scripts: real derivations) and assertions (NixOS only renders the
  # messages of FAILED assertions; forcing all of them would fail on messages like
  # "EFI paths must be absolute, not ${null}").
  noForce = [
    "system.build"
    "assertions"
  ];
  modelledOptions = filter (
    opt:
    any (d: hasPrefix mirrorDir (toString d) || hasPrefix (toString ../../modules) (toString d)) opt.declarations
    && !(elem (showOption opt.loc) noForce)
  ) (lib.collect isOption options);
  forced = lib.foldl' (n: opt: if opt.isDefined then builtins.deepSeq opt.value (n + 1) else n) 0 modelledOptions;

  # --- what NixOS would report -------------------------------------------------------------
  failedAssertions = map (a: a.message) (filter (a: !a.assertion) config.assertions);
  inherit (config) warnings;

  # --- summary -----------------------------------------------------------------------------
  grub = config.boot.loader.grub;
  sdboot = config.boot.loader.systemd-boot.enable;
  efi = config.boot.loader.efi;
  bootloader =
    if sdboot then
      "systemd-boot"
    else if grub.enable then
      "grub" + lib.optionalString grub.efiSupport "+efi" + lib.optionalString grub.efiInstallAsRemovable "(removable)"
    else
      "none";
  ssh = config.boot.initrd.network.ssh;
  sshActive = (config.boot.initrd.network.enable || config.boot.initrd.systemd.network.enable) && ssh.enable;
  luksNames = attrNames config.boot.initrd.luks.devices;
  fs = config.fileSystems;
  net = config.systemd.network;
  inet = config.boot.initrd.systemd.network;
  enabledNames = units: attrNames (lib.filterAttrs (_: u: u.enable) units);

  # Unit text (what --verbose prints) of the sections in plasmagen's contract (networkd.nix):
  # every other unit option can only hold its default. Coerces every value to a string, as
  # rendering the unit does in NixOS.
  listLines = key: values: lib.concatMapStrings (v: "${key}=${v}\n") values;
  sectionText =
    title: attrs:
    lib.optionalString (attrs != { }) (
      "[${title}]\n"
      + lib.concatStrings (
        mapAttrsToList (k: v: listLines k (map (x: if lib.isBool x then lib.boolToString x else toString x) (lib.toList v))) attrs
      )
    );
  renderNetwork =
    def:
    sectionText "Match" def.matchConfig
    + sectionText "Link" def.linkConfig
    + "[Network]\n"
    + lib.removePrefix "[Network]\n" (sectionText "Network" def.networkConfig)
    + listLines "Address" def.address
    + listLines "Gateway" def.gateway
    + listLines "DNS" def.dns
    + listLines "Bond" def.bond
    + listLines "VLAN" def.vlan;
  renderNetdev =
    def:
    sectionText "Match" def.matchConfig
    + sectionText "NetDev" def.netdevConfig
    + sectionText "VLAN" def.vlanConfig
    + sectionText "Bond" def.bondConfig;
  units =
    n:
    lib.mapAttrs' (name: def: lib.nameValuePair "${name}.netdev" (renderNetdev def)) n.netdevs
    // lib.mapAttrs' (name: def: lib.nameValuePair "${name}.network" (renderNetwork def)) n.networks;

  # nftables.nix L326-350: `table ${table.family} ${table.name} { ${table.content} }`
  nftRules = lib.concatStrings (
    mapAttrsToList (_: t: "table ${t.family} ${t.name} {\n${t.content}\n}\n") (
      lib.filterAttrs (_: t: t.enable) config.networking.nftables.tables
    )
  );

  # --- this project's own checks (not NixOS's) ---------------------------------------------
  check = ok: msg: optional (!ok) "plasmacloud: ${msg}";
  initrdModules = config.boot.initrd.availableKernelModules;
  missing = wanted: filter (m: !(elem m initrdModules)) wanted;
  # the sample of kernel.nix's defaults the stand-in defines (nixos/system/boot/kernel.nix) and
  # modules of hardware.nix's list
  nixosDefaults = [
    "ahci"
    "nvme"
    "sd_mod"
    "mmc_block"
    "xhci_hcd"
    "hid_generic"
  ];
  ours = [
    "virtio_blk"
    "usb_storage"
  ];
  # every name a .network refers to must be a .netdev of the same tree
  netdevRefs =
    tree:
    let
      netdevNames = map (d: d.netdevConfig.Name) (attrValues tree.netdevs);
      refs = concatMap (
        nw:
        nw.vlan
        ++ nw.bond
        ++ lib.toList (nw.networkConfig.Bond or [ ])
        ++ lib.toList (nw.networkConfig.VLAN or [ ])
      ) (attrValues tree.networks);
    in
    filter (r: !(elem r netdevNames)) refs;
  emptyMatch = tree: attrNames (lib.filterAttrs (_: nw: nw.enable && nw.matchConfig == { }) tree.networks);
  hostKeyDefs = concatMap (d: d.value) options.boot.initrd.network.ssh.hostKeys.definitionsWithLocations;
  esp = fs.${efi.efiSysMountPoint} or null;

  checks =
    check (missing nixosDefaults == [ ])
      "boot.initrd.availableKernelModules lost NixOS's defaults (kernel.nix) ${toString (missing nixosDefaults)}: a definition with a higher priority (mkForce) replaced them"
    ++ check (missing ours == [ ])
      "boot.initrd.availableKernelModules lacks ${toString (missing ours)} (hardware.nix): a lower priority (mkDefault) definition was dropped next to kernel.nix's"
    ++ check (config.networking.hostName + "." + toString config.networking.domain == fqdn)
      "networking.hostName.domain is ${config.networking.hostName}.${toString config.networking.domain}, not ${fqdn}"
    ++ check (
      firmware == "bios" -> (!sdboot && grub.enable && grub.devices != [ ])
    ) "BIOS firmware needs GRUB installed to a disk (systemd-boot: ${lib.boolToString sdboot}, grub.devices: ${toString grub.devices})"
    ++ check (firmware == "uefi" -> (sdboot || (grub.enable && grub.efiSupport)))
      "UEFI firmware needs an EFI bootloader (systemd-boot or GRUB with efiSupport); got ${bootloader}"
    ++ check (
      firmware == "uefi" -> (esp != null && esp.fsType == "vfat")
    ) "UEFI: no vfat file system at efiSysMountPoint ${efi.efiSysMountPoint} (the ESP the EFI bootloader installs to)"
    ++ check (layout == "raid1" -> config.boot.swraid.enable) "raid1: boot.swraid.enable is not set"
    ++ check (layout == "luks-lvm" -> luksNames != [ ]) "luks-lvm: boot.initrd.luks.devices is empty"
    ++ check (
      ssh.enable -> sshActive
    ) "boot.initrd.network.ssh.enable is set but neither boot.initrd.network.enable nor boot.initrd.systemd.network.enable: initrd-ssh.nix starts no sshd and checks nothing"
    ++ check (all builtins.isString hostKeyDefs)
      "boot.initrd.network.ssh.hostKeys has a Nix path: initrd-ssh.nix copies it into the world-readable Nix store (use a string)"
    ++ check (all builtins.isString hostKeyDefs -> all (k: !(lib.hasPrefix builtins.storeDir (toString k))) ssh.hostKeys)
      "boot.initrd.network.ssh.hostKeys points into the Nix store"
    ++ check (
      sshActive -> elem "virtio_net" initrdModules || elem "e1000e" initrdModules
    ) "initrd SSH is on, but the initrd has no NIC driver (boot.initrd.availableKernelModules)"
    ++ check (netdevRefs net == [ ]) "systemd.network: .network files refer to undefined netdevs ${toString (netdevRefs net)}"
    ++ check (netdevRefs inet == [ ])
      "boot.initrd.systemd.network: .network files refer to undefined netdevs ${toString (netdevRefs inet)}"
    ++ check (emptyMatch net == [ ])
      "systemd.network.networks ${toString (emptyMatch net)} have an empty [Match]: they would match EVERY interface"
    ++ check (emptyMatch inet == [ ])
      "boot.initrd.systemd.network.networks ${toString (emptyMatch inet)} have an empty [Match]: they would match EVERY interface";
in
builtins.seq forced {
  inherit
    fqdn
    firmware
    layout
    bootloader
    failedAssertions
    warnings
    checks
    unknownOptions
    forced
    ;
  grubDevices = grub.devices;
  fileSystems = lib.mapAttrs (_: f: {
    inherit (f) device fsType options;
  }) fs;
  luks = luksNames;
  initrdSsh =
    if !ssh.enable then
      "-"
    else if sshActive then
      "port ${toString ssh.port}"
    else
      "INACTIVE";
  networks = enabledNames net.networks;
  netdevs = enabledNames net.netdevs;
  initrdNetworks = if inet.enable then enabledNames inet.networks else [ ];
  networkdUnits = units net;
  initrdNetworkdUnits = if inet.enable then units inet else { };
  nftables = nftRules;
  unmodelled = evaluated.standIns;
}
