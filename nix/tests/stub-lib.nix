# A small stand-in for nixpkgs' `lib`, enough to evaluate this project's modules where no
# nixpkgs exists (the repository's tests). It implements only what our modules use, with the
# same meaning; option types check values but know nothing of merging between modules.
let
  inherit (builtins)
    all
    attrNames
    concatStringsSep
    elem
    filter
    isAttrs
    isBool
    isInt
    isList
    isPath
    isString
    length
    listToAttrs
    map
    match
    replaceStrings
    split
    ;

  mkType = name: check: extra: { inherit name check; } // extra;

  types = {
    str = mkType "string" isString { };
    bool = mkType "boolean" isBool { };
    path = mkType "path" (v: isPath v || (isString v && builtins.substring 0 1 v == "/")) { };
    package = mkType "package" (v: isAttrs v && v ? outPath) { };
    port = mkType "16 bit unsigned integer" (v: isInt v && v >= 0 && v <= 65535) { };
    ints.positive = mkType "positive integer" (v: isInt v && v > 0) { };
    anything = mkType "anything" (_: true) { };
    listOf = t: mkType "list of ${t.name}" (v: isList v && all t.check v) { elemType = t; kind = "list"; };
    attrsOf = t: mkType "attribute set of ${t.name}" (v: isAttrs v && all t.check (builtins.attrValues v)) {
      elemType = t;
      kind = "attrs";
    };
    nullOr = t: mkType "null or ${t.name}" (v: v == null || t.check v) { elemType = t; kind = "null"; };
    enum = vs: mkType "one of ${concatStringsSep ", " (map builtins.toJSON vs)}" (v: elem v vs) { };
    submodule = m: mkType "submodule" isAttrs { submodule = m; };
  };

  escapeShellArg =
    arg:
    let
      s = toString arg;
    in
    if match "[[:alnum:],._+:@%/-]+" s == null then "'${replaceStrings [ "'" ] [ "'\\''" ] s}'" else s;
in
{
  inherit types escapeShellArg;

  mkOption = args: args // { _type = "option"; };
  mkEnableOption = name: {
    _type = "option";
    type = types.bool;
    default = false;
    description = "Whether to enable ${name}.";
  };
  mkPackageOption = pkgs: name: _: {
    _type = "option";
    type = types.package;
    default = pkgs.${name};
    description = "The ${name} package to use.";
  };
  literalExpression = text: {
    _type = "literalExpression";
    inherit text;
  };

  mkIf = condition: content: {
    _type = "if";
    inherit condition content;
  };
  mkMerge = contents: {
    _type = "merge";
    inherit contents;
  };
  mkDefault = content: {
    _type = "override";
    priority = 1000;
    inherit content;
  };
  mkForce = content: {
    _type = "override";
    priority = 50;
    inherit content;
  };

  optional = c: x: if c then [ x ] else [ ];
  optionals = c: xs: if c then xs else [ ];
  optionalAttrs = c: a: if c then a else { };
  inherit elem listToAttrs concatStringsSep;
  concatStrings = concatStringsSep "";
  attrValues = builtins.attrValues;
  mapAttrs = builtins.mapAttrs;
  mapAttrsToList = f: a: map (n: f n a.${n}) (attrNames a);
  mapAttrs' = f: a: listToAttrs (map (n: f n a.${n}) (attrNames a));
  nameValuePair = name: value: { inherit name value; };
  getExe' = pkg: exe: "${pkg}/bin/${exe}";
  toInt =
    s:
    let
      v = builtins.fromJSON s;
    in
    if isInt v then v else throw "toInt: ${s}";
  last = l: builtins.elemAt l (length l - 1);
  splitString = sep: s: filter isString (split (replaceStrings [ "." ] [ "\\." ] sep) s);
  escapeShellArgs = args: concatStringsSep " " (map escapeShellArg args);
}
