# Stand-in for nixos/modules/services/networking/nftables.nix (copy find_string id 260124407,
# /tmp/research/src/misc/nftables.nix): every option, with its type and default, and the one
# default the generated files rely on. Tables (L10), required content and family:
#   content = lib.mkOption { type = lib.types.lines; };
#   family = lib.mkOption { type = lib.types.enum [ "ip" "ip6" "inet" "arp" "bridge" "netdev" ]; };
#   name (str, default the attribute name), enable (bool, true)
# L52 enable (bool, false), L76 checkRuleset (bool, true), L88 checkRulesetRedirects (attrsOf path,
# {}), L110 preCheckRuleset / L125 extraDeletions / L140 ruleset (lines, ""), L123 flushRuleset
# (mkEnableOption), L194 rulesetFile (nullOr path, null), L203 flattenRulesetFile (bool, false),
# L215 tables (attrsOf (submodule tableSubmodule), {}).
# L279 (templates/flake/pxe-server.nix relies on it: flushing stays off for a host with tables only)
#   networking.nftables.flushRuleset = lib.mkDefault (lib.versionOlder config.system.stateVersion "23.11"
#     || (cfg.rulesetFile != null || cfg.ruleset != ""));
# eval-node.nix renders the enabled tables as L326-350 does: `table ${family} ${name} { ${content} }`.
{ config, lib, ... }:
let
  inherit (lib) mkOption types;
  option = type: default: mkOption { inherit type default; };
  cfg = config.networking.nftables;
  table =
    { name, ... }:
    {
      options = {
        enable = option types.bool true;
        name = option types.str name;
        content = mkOption { type = types.lines; };
        family = mkOption { type = types.enum [ "ip" "ip6" "inet" "arp" "bridge" "netdev" ]; };
      };
    };
in
{
  options.networking.nftables = {
    enable = option types.bool false;
    checkRuleset = option types.bool true;
    checkRulesetRedirects = option (types.attrsOf types.path) { };
    preCheckRuleset = option types.lines "";
    flushRuleset = lib.mkEnableOption "flushing the entire ruleset on each reload";
    extraDeletions = option types.lines "";
    ruleset = option types.lines "";
    rulesetFile = option (types.nullOr types.path) null;
    flattenRulesetFile = option types.bool false;
    tables = option (types.attrsOf (types.submodule table)) { };
  };

  config = lib.mkIf cfg.enable {
    networking.nftables.flushRuleset = lib.mkDefault (
      lib.versionOlder config.system.stateVersion "23.11" || cfg.rulesetFile != null || cfg.ruleset != ""
    );
  };
}
