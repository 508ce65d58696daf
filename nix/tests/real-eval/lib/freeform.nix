# The root module's freeform type: where every definition of an option this evaluator does NOT
# model lands (services.chainfire, systemd.services, environment.etc, time.timeZone, ...).
#
# NixOS declares all of those with real types; we do not have them (no nixpkgs here, only
# nixpkgs.lib), so they get a stand-in element type that merges the way most NixOS options do:
#   attribute sets  -> merged per attribute, recursively (like attrsOf / submodule); mkIf,
#                      mkMerge, mkDefault, mkForce and mkOrder inside are resolved by attrsOf
#   lists           -> concatenated (like listOf)
#   anything else   -> all definitions must be equal (like str / bool / int: mergeEqualOption)
# `types.anything` is not used: it refuses to merge two different lists.
#
# Consequence (documented in docs/nix-real-eval.md): a type error in an unmodelled option is not
# found, and an unmodelled `lines` option defined twice would be reported as a conflict. The
# modelled options (nixos/*.nix) have their real types.
{ lib }:
let
  inherit (lib) all any isAttrs isList isDerivation types;

  nixosLike = lib.mkOptionType {
    name = "nixosLike";
    description = "unmodelled NixOS option value (attrs merge, lists concatenate, scalars must be equal)";
    check = _: true;
    merge =
      loc: defs:
      let
        values = map (d: d.value) defs;
      in
      if all isAttrs values && !(any isDerivation values) then
        (types.attrsOf nixosLike).merge loc defs
      else if all isList values then
        (types.listOf nixosLike).merge loc defs
      else
        lib.mergeEqualOption loc defs;
  };

  # Pass 1 of eval-with-stand-ins.nix only needs to know WHICH attribute paths are defined. This
  # root type returns that tree of names without evaluating any mkIf condition (a condition may
  # read `config`, which a freeform root is still building: infinite recursion). mkIf, mkMerge,
  # mkOverride, mkOrder are looked through; values are `true` leaves; names stay lazy.
  shape =
    v:
    let
      t = if isAttrs v then v._type or null else null;
    in
    if t == "if" || t == "override" || t == "order" then
      shape v.content
    else if t == "merge" then
      mergeShapes (map shape v.contents)
    else if t == "definition" then
      shape v.value
    else if isAttrs v && !(isDerivation v) && t == null then
      lib.mapAttrs (_: shape) v
    else
      true;
  mergeShapes = shapes: lib.zipAttrsWith (_: mergeShapes) (lib.filter isAttrs shapes);
  pathsType = lib.mkOptionType {
    name = "definedPaths";
    description = "tree of the defined attribute names (pass 1 of eval-with-stand-ins.nix)";
    check = _: true;
    merge = _loc: defs: mergeShapes (map (d: shape d.value) defs);
  };
in
{
  inherit nixosLike pathsType;
  # lazyAttrsOf: an unmodelled attribute is only evaluated when something reads it, as in NixOS
  # (system.build from disko needs real packages and is never read here).
  type = types.lazyAttrsOf nixosLike;
}
