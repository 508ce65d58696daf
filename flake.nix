{
  description = "PlasmaCloud bare-metal provisioning: plasmagen, plasma-agent and NixOS modules";

  inputs.nixpkgs.url = "github:NixOS/nixpkgs/nixos-26.05";

  outputs =
    { self, nixpkgs }:
    let
      inherit (nixpkgs) lib;
      system = "x86_64-linux";
      pkgs = nixpkgs.legacyPackages.${system};

      version = (lib.importTOML ./Cargo.toml).workspace.package.version;

      # Only what cargo needs, so editing docs or Nix files does not rebuild the binaries.
      src = lib.fileset.toSource {
        root = ./.;
        fileset = lib.fileset.unions [
          ./Cargo.toml
          ./Cargo.lock
          ./wire
          ./pki
          ./inventory
          ./collector
          ./generator
          ./operator
          ./agent
          ./tests
          ./templates
        ];
      };

      # Per package set, so the modules build the binaries for whatever system uses them.
      packagesFor = p: {
        plasmagen = p.callPackage ./nix/package.nix {
          inherit src version;
          pname = "plasmagen";
          description = "Renders a PlasmaCloud fleet's flake, PKI and PXE artifacts; runs the collector";
        };
        plasma-agent = p.callPackage ./nix/package.nix {
          inherit src version;
          pname = "plasma-agent";
          description = "First-boot agent: bootstraps or joins Chainfire/FlareDB, discovers hardware";
        };
      };
      packages = packagesFor pkgs;

      # `nix run .#generate -- <inventory> --out <dir>` runs `plasmagen generate ...`.
      app = subcommand: {
        type = "app";
        program = "${pkgs.writeShellScript "plasmagen-${subcommand}" ''
          exec ${packages.plasmagen}/bin/plasmagen ${subcommand} "$@"
        ''}";
        meta.description = "plasmagen ${subcommand}";
      };

      # Each module defaults its package to this flake's build for the host's package set.
      withPackage =
        path: setPackage:
        { pkgs, lib, ... }:
        {
          imports = [ path ];
          config = setPackage (lib.mapAttrs (_: lib.mkDefault) (packagesFor pkgs));
        };
    in
    {
      overlays.default = final: _prev: packagesFor final;

      packages.${system} = packages // {
        default = packages.plasmagen;
      };

      apps.${system} = {
        generate = app "generate";
        collector = app "collector";
        status = app "status";
        default = app "generate";
      };

      nixosModules = {
        first-boot = withPackage ./nix/modules/first-boot.nix (p: {
          services.first-boot-automation.package = p.plasma-agent;
        });
        pxe-server = withPackage ./nix/modules/pxe-server.nix (p: {
          services.centra-pxe-server.collector.package = p.plasmagen;
        });
        # Not part of `default`: it turns the whole system into a netboot installer.
        netboot = withPackage ./nix/netboot.nix (p: {
          plasmacloud.netboot.package = p.plasma-agent;
        });
        default = {
          imports = [
            self.nixosModules.first-boot
            self.nixosModules.pxe-server
          ];
        };
      };

      checks.${system} = packages // {
        first-boot-vm = import ./nix/tests/first-boot.nix {
          inherit pkgs;
          module = self.nixosModules.first-boot;
        };
      };

      formatter.${system} = pkgs.nixfmt-rfc-style;
    };
}
