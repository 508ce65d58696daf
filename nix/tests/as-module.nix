# Imports one generated NixOS module file the way NixOS's module system does, without nixpkgs,
# and returns its configuration for value checks:
#   import ./as-module.nix { path = ./nodes/x/boot.nix; options = { hardware.facter = { }; }; }
#
# - A function module is called with the named arguments lib/modules.nix supplies (applyModuleArgs:
#   every named argument, default or not, is looked up in `_module.args` and `specialArgs`, so a
#   module taking `disks ? [ ... ]` fails there with "attribute 'disks' missing"). NixOS provides
#   config, options, lib, pkgs and utils through `_module.args` and modulesPath, baseModules,
#   extendModules and modules through specialArgs (nixos/lib/eval-config.nix). Any other
#   argument is an error here, as it is in NixOS.
# - The result is the module's config (its `config` attribute when it has one, else the set
#   without `imports`), with mkMerge/mkIf resolved. mkDefault/mkForce stay visible as
#   { _type = "override"; priority; content; } so a test can assert a definition's priority.
# - `imports` are returned as strings (paths), not followed.
{
  path,
  options ? { },
  lib ? import ./stub-lib.nix,
}:
let
  suppliedByNixos = {
    config = { };
    inherit options lib;
    pkgs = import ./stub-pkgs.nix;
    utils = { };
    modulesPath = "/nixos/modules";
    baseModules = [ ];
    extendModules = _: { };
    modules = [ ];
  };
  imported = import path;
  args = if builtins.isFunction imported then builtins.functionArgs imported else { };
  unsupplied = builtins.filter (a: !(suppliedByNixos ? ${a})) (builtins.attrNames args);
  module =
    if unsupplied != [ ] then
      throw "${toString path} takes ${builtins.concatStringsSep ", " unsupplied}: NixOS's module system supplies no such argument"
    else if builtins.isFunction imported then
      imported (builtins.intersectAttrs args suppliedByNixos)
    else
      imported;
  structural = [
    "imports"
    "config"
    "options"
    "_file"
    "key"
    "disabledModules"
    "meta"
    "freeformType"
  ];
  hasStructure = module ? config || module ? options;
  strayKeys = builtins.filter (k: !(builtins.elem k structural)) (builtins.attrNames module);
  rawConfig =
    if hasStructure then
      (if strayKeys != [ ] then
        throw "${toString path}: ${builtins.head strayKeys} next to config/options (the module system rejects this)"
      else
        module.config or { })
    else
      builtins.removeAttrs module [ "imports" "_file" "key" "disabledModules" ];

  isType = t: v: builtins.isAttrs v && (v._type or null) == t;
  # Merge two resolved definitions of the same place: sets recursively, lists concatenated.
  merge2 =
    a: b:
    if builtins.isAttrs a && builtins.isAttrs b && !(a ? _type) && !(b ? _type) then
      builtins.zipAttrsWith (_: vs: if builtins.length vs == 1 then builtins.head vs else merge2 (builtins.elemAt vs 0) (builtins.elemAt vs 1)) [ a b ]
    else if builtins.isList a && builtins.isList b then
      a ++ b
    else
      throw "${toString path}: conflicting definitions ${builtins.toJSON a} and ${builtins.toJSON b}";
  resolve =
    v:
    if isType "merge" v then
      builtins.foldl' merge2 { } (builtins.filter (x: x != null) (map resolve v.contents))
    else if isType "if" v then
      (if v.condition then resolve v.content else null)
    else if isType "override" v then
      v // { content = resolve v.content; }
    else if builtins.isAttrs v && !(v ? _type) && !(v ? outPath) then
      builtins.mapAttrs (_: resolve) (
        builtins.removeAttrs v (builtins.filter (k: isType "if" v.${k} && !v.${k}.condition) (builtins.attrNames v))
      )
    else
      v;
in
{
  config = resolve rawConfig;
  imports = map toString (module.imports or [ ]);
  arguments = builtins.attrNames args;
  isFunction = builtins.isFunction imported;
}
