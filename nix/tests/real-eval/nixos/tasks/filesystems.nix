# Stand-in for nixos/modules/tasks/filesystems.nix (nixpkgs
# @0148e16d1446003704803ecabb5a00cfea7d8568, 2025, the 25.11 layout): the fileSystems option
# disko writes (`fileSystems.<mountpoint> = { device; fsType; options; }`, filesystem.nix:86-97)
# with its real submodule types and defaults; no assertion of that module is relied on.
#   nonEmptyStr = addCheckDesc "non-empty" types.str isNonEmpty;
#     (isNonEmpty = s: (builtins.match "[ \t\n]*" s) == null)
#   nonEmptyWithoutTrailingSlash: non-empty and (builtins.match ".+/" s) == null
#   enable (bool, true), mountPoint (nonEmptyWithoutTrailingSlash, default name),
#   stratis.poolUuid (uniq (nullOr str), null), device (nullOr nonEmptyStr, null),
#   fsType (nonEmptyStr, "auto"; no default from 26.05 on, disko always sets it),
#   options (nonEmptyListOf nonEmptyStr, [ "defaults" ]), depends (listOf nonEmptyWithoutTrailingSlash, []),
#   label (nullOr nonEmptyStr, null), autoFormat / autoResize / noCheck (bool, false),
#   formatOptions (unspecified, null)
#   fileSystems = mkOption { type = types.attrsOf (types.submodule [ coreFileSystemOpts fileSystemOpts ]);
#     apply = lib.filterAttrs (_: fs: fs.enable); ... }
# The submodule is not freeform (stage-1.nix adds neededForBoot to it).
{ lib, ... }:
let
  inherit (lib) types;
  option = type: default: lib.mkOption { inherit type default; };
  checked = desc: t: check: types.addCheck t check // { description = "${t.description} (with check: ${desc})"; };
  isNonEmpty = s: builtins.match "[ \t\n]*" s == null;
  nonEmptyStr = checked "non-empty" types.str isNonEmpty;
  nonEmptyWithoutTrailingSlash = checked "non-empty without trailing slash" types.str (
    s: isNonEmpty s && builtins.match ".+/" s == null
  );
in
{
  options.fileSystems = lib.mkOption {
    default = { };
    apply = lib.filterAttrs (_: fs: fs.enable);
    type = types.attrsOf (
      types.submodule (
        { name, ... }:
        {
          options = {
            enable = option types.bool true;
            mountPoint = option nonEmptyWithoutTrailingSlash name;
            stratis.poolUuid = option (types.uniq (types.nullOr types.str)) null;
            device = option (types.nullOr nonEmptyStr) null;
            fsType = option nonEmptyStr "auto";
            options = option (types.nonEmptyListOf nonEmptyStr) [ "defaults" ];
            depends = option (types.listOf nonEmptyWithoutTrailingSlash) [ ];
            label = option (types.nullOr nonEmptyStr) null;
            autoFormat = option types.bool false;
            autoResize = option types.bool false;
            noCheck = option types.bool false;
            formatOptions = option types.unspecified null;
          };
        }
      )
    );
  };
}
