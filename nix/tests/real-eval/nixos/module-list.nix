# The NixOS stand-ins of this evaluator (see docs/nix-real-eval.md for what each declares and checks).
# eval-node.nix imports these next to disko's real module.nix and the node's configuration.nix.
[
  ./misc/assertions.nix
  ./misc/version.nix
  ./system/build.nix
  ./system/boot/kernel.nix
  ./system/boot/stage-1.nix
  ./system/boot/systemd/initrd.nix
  ./system/boot/loader/grub/grub.nix
  ./system/boot/loader/efi.nix
  ./system/boot/loader/systemd-boot/systemd-boot.nix
  ./system/boot/luksroot.nix
  ./system/boot/initrd-ssh.nix
  ./system/boot/initrd-network.nix
  ./system/boot/networkd.nix
  ./tasks/swraid.nix
  ./tasks/filesystems.nix
  ./tasks/network-interfaces.nix
  ./services/networking/nftables.nix
  ./services/networking/firewall.nix
  ./config/users-groups.nix
]
