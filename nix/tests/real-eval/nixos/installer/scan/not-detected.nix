# Stand-in for nixpkgs' nixos/modules/installer/scan/not-detected.nix, which the generated
# hardware.nix imports as `modulesPath + "/installer/scan/not-detected.nix"` (eval-node.nix sets
# modulesPath to nixos/ here, so the import resolves). Upstream (find_string id 472170591) it
# only enables redistributable (non-free) firmware by default (hardware.enableRedistributableFirmware);
# nothing checked here depends on that, so this stand-in sets nothing.
_: { }
