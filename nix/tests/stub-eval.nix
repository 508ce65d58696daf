# Evaluates one of this project's NixOS modules without nixpkgs (see stub-lib.nix):
#   import ./stub-eval.nix { module = ../modules/first-boot.nix; settings = { services.first-boot-automation = { ... }; }; }
# `settings` must only set options the module declares, with values of the declared types
# (anything else throws, naming the option); `world` supplies other modules' config the module
# reads (e.g. system.build.kernel). Returns { options; values; config } where config is the
# module's output with mkIf/mkMerge/mkDefault resolved. `imports` are ignored.
{
  module,
  settings ? { },
  world ? { },
  pkgs ? import ./stub-pkgs.nix,
}:
let
  lib = import ./stub-lib.nix;
  inherit (builtins)
    attrNames
    concatStringsSep
    filter
    foldl'
    isAttrs
    isList
    mapAttrs
    ;

  evaluated = import module {
    inherit lib pkgs;
    config = world // values;
    modulesPath = "/stub/nixos/modules";
  };

  isOption = v: isAttrs v && (v._type or null) == "option";

  showPath = path: concatStringsSep "." path;

  # Applies a declared type to a set value: checks it, fills submodule defaults.
  applyType =
    path: type: value:
    if !(type.check value) then
      throw "option ${showPath path}: value ${builtins.toJSON value} is not a ${type.name}"
    else if type ? submodule then
      fill path type.submodule.options value
    else if (type.kind or null) == "attrs" then
      mapAttrs (k: applyType (path ++ [ k ]) type.elemType) value
    else if (type.kind or null) == "list" then
      map (applyType (path ++ [ "*" ]) type.elemType) value
    else if (type.kind or null) == "null" && value != null then
      applyType path type.elemType value
    else
      value;

  fill =
    path: decls: given:
    let
      unknown = filter (n: !(decls ? ${n})) (attrNames given);
    in
    if unknown != [ ] then
      throw "option ${showPath (path ++ [ (builtins.head unknown) ])} does not exist"
    else
      mapAttrs (
        name: decl:
        let
          p = path ++ [ name ];
        in
        if isOption decl then
          if given ? ${name} then
            applyType p decl.type given.${name}
          else if decl ? default then
            decl.default
          else
            throw "option ${showPath p} is used but not defined"
        else
          fill p decl (given.${name} or { })
      ) decls;

  values = fill [ ] evaluated.options settings;

  # mkIf / mkMerge / mkDefault / mkForce, pushed down and resolved (one module: no priorities
  # to compare, so overrides just unwrap).
  isFalseIf = v: isAttrs v && (v._type or null) == "if" && !v.condition;
  resolve =
    v:
    if isAttrs v && (v._type or null) == "if" then
      (if v.condition then resolve v.content else { })
    else if isAttrs v && (v._type or null) == "merge" then
      foldl' (acc: x: merge acc (resolve x)) { } v.contents
    else if isAttrs v && (v._type or null) == "override" then
      resolve v.content
    else if isAttrs v && !(v ? outPath) && !(v ? _type) then
      mapAttrs (_: resolve) (removeFalse v)
    else if isList v then
      map resolve v
    else
      v;
  removeFalse = a: builtins.removeAttrs a (filter (n: isFalseIf a.${n}) (attrNames a));
  merge =
    a: b:
    a
    // mapAttrs (
      n: bv:
      if !(a ? ${n}) then
        bv
      else if isAttrs a.${n} && isAttrs bv && !(bv ? outPath) then
        merge a.${n} bv
      else if isList a.${n} && isList bv then
        a.${n} ++ bv
      else
        bv
    ) b;
in
{
  inherit (evaluated) options;
  inherit values;
  config = resolve (evaluated.config or { });
}
