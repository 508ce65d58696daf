# Stand-in for nixos/modules/tasks/swraid.nix (copy find_string id 340951194, nixfmt era;
# /tmp/research/src/swraid.nix). Its two options:
#   L32 enable = lib.mkEnableOption "swraid support using mdadm" // { default = enable_implicitly_for_old_state_versions; };
#       (L13: lib.versionOlder config.system.stateVersion "23.11"; disko's mdadm type sets it true)
#   L50 mdadmConf = lib.mkOption { type = lib.types.lines; default = ""; };
# and the warning the generated boot.nix's `PROGRAM` line is there for (mkIf cfg.enable):
#   L16 minimum_config_is_set = config_text: (builtins.match ".*(MAILADDR|PROGRAM).*" mdadm_conf.text) != null;
#   L58 warnings = lib.mkIf (!enable_implicitly_for_old_state_versions && !minimum_config_is_set mdadm_conf) [
#         "mdadm: Neither MAILADDR nor PROGRAM has been set. This will cause the `mdmon` service to crash." ];
#   L66 environment.etc."mdadm.conf".text = lib.mkAfter cfg.mdadmConf;
{ config, lib, ... }:
let
  cfg = config.boot.swraid;
  old = lib.versionOlder config.system.stateVersion "23.11";
  text = config.environment.etc."mdadm.conf".text;
in
{
  options.boot.swraid = {
    enable = lib.mkEnableOption "swraid support using mdadm" // {
      default = old;
    };
    mdadmConf = lib.mkOption {
      type = lib.types.lines;
      default = "";
    };
  };

  config = lib.mkIf cfg.enable {
    warnings = lib.mkIf (!old && builtins.match ".*(MAILADDR|PROGRAM).*" text == null) [
      "mdadm: Neither MAILADDR nor PROGRAM has been set. This will cause the `mdmon` service to crash."
    ];
    environment.etc."mdadm.conf".text = lib.mkAfter cfg.mdadmConf;
  };
}
