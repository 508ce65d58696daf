# plasmagen's own contract for networkd unit sections (used by nixos/system/boot/networkd.nix).
# Not a copy of nixpkgs' systemd-lib.nix: nixpkgs checks every key of every section; here a
# section accepts only the keys plasmagen's templates emit, each checked against the values
# nixpkgs allows for it (the allowed values are listed, with citations, in networkd.nix), and
# rejects every other key, so that a new key in templates/ needs a conscious update here.
# A failed check makes the definition a type error, as in NixOS (addCheck; the reasons are
# traced just before the "is not of type" error).
{ lib }:
let
  inherit (lib) elem isString optional;
  contractHint = "not in plasmagen's checked contract; add it here with the nixpkgs check it is subject to (nix/tests/real-eval/nixos/system/boot/networkd.nix)";
  reject = errors: errors == [ ] || builtins.trace (lib.concatStringsSep "\n" errors) false;
  # mkIf / mkOverride / mkOrder inside a section are resolved only after the check runs
  plain = v: if elem (v._type or null) [ "if" "override" "order" ] then plain v.content else v;
  cannot = group: key: v: "Systemd ${group} field `${key}' cannot have value `${toString v}'.";
in
rec {
  # The element type of every section, as nixpkgs declares it (nixos/lib/systemd-unit-options.nix,
  # find_string id 15671968442): lists concatenate, other values must be equal:
  #   if any (def: isList def.value) defs' then concatMap (def: toList def.value) defs' else mergeEqualOption loc defs'
  unitOption = lib.mkOptionType {
    name = "systemd option";
    merge =
      loc: defs:
      let
        defs' = lib.filterOverrides defs;
      in
      if lib.any (d: lib.isList d.value) defs' then lib.concatMap (d: lib.toList d.value) defs' else lib.mergeEqualOption loc defs';
  };

  # systemd-lib.nix: `boolValues = [true false "yes" "no"];`
  boolValues = [ true false "yes" "no" ];

  # Value rules: `ok` decides, `why` explains a failure.
  anyValue = {
    ok = _: true;
    why = cannot;
  };
  oneOf = values: {
    ok = v: elem v values;
    why = cannot;
  };
  intIn = min: max: {
    ok = v: builtins.isInt v && min <= v && v <= max;
    why =
      group: key: v:
      if builtins.isInt v then
        "Systemd ${group} field `${key}' is outside the range [${toString min},${toString max}]"
      else
        "Systemd ${group} field `${key}' is not an integer";
  };
  # a state of `states`, or a range "min:max" of them with min not after max
  stateOrRange = states: {
    ok =
      v:
      let
        parts = lib.splitString ":" v;
        rank = s: lib.lists.findFirstIndex (x: x == s) null states;
        lo = rank (lib.head parts);
        hi = rank (lib.last parts);
      in
      elem v boolValues || (isString v && lib.length parts <= 2 && lo != null && hi != null && lo <= hi);
    why = cannot;
  };

  # A section (`attrsOf unitOption`, as upstream) holding only the `fields` of the contract.
  section =
    group:
    {
      fields,
      required ? [ ],
    }:
    lib.types.addCheck (lib.types.attrsOf unitOption) (
      attrs:
      reject (
        map (k: "Systemd ${group} field `${k}' must exist.") (lib.filter (k: !(attrs ? ${k})) required)
        ++ lib.concatMap (
          k:
          if !(fields ? ${k}) then
            [ "Systemd ${group} field `${k}' is ${contractHint}" ]
          else
            optional (!(fields.${k}.ok (plain attrs.${k}))) (fields.${k}.why group k (plain attrs.${k}))
        ) (lib.attrNames attrs)
      )
    );

  # A unit option that nixpkgs declares (with this container type) but plasmagen does not use:
  # only its default is accepted.
  unused =
    name: type: default:
    lib.mkOption {
      inherit default;
      type = lib.types.addCheck type (v: reject (optional (v != default) "networkd unit option `${name}' is ${contractHint}"));
    };
}
