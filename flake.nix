{
  # bootaudit for nix users: `nix run .# -- run --iso result/iso`, or a dev shell with QEMU.
  # CI evaluates it offline against a stub nixpkgs (tests/nix_flake.rs); the Cargo build is the reference.
  description = "bootaudit: audit a bootable OS image over its serial console, with evidence";

  inputs.nixpkgs.url = "github:NixOS/nixpkgs/nixos-25.05";

  outputs = { self, nixpkgs }:
    let
      systems = [ "x86_64-linux" "aarch64-linux" ];
      forAll = f: nixpkgs.lib.genAttrs systems (system: f nixpkgs.legacyPackages.${system});
    in {
      packages = forAll (pkgs: {
        default = pkgs.rustPlatform.buildRustPackage {
          pname = "bootaudit";
          version = "0.1.0";
          src = self;
          cargoLock.lockFile = ./Cargo.lock;
          nativeBuildInputs = [ pkgs.makeWrapper ];
          # The tests boot fixture images built from Debian packages; they run in CI, not here.
          doCheck = false;
          postInstall = ''
            wrapProgram $out/bin/bootaudit --prefix PATH : ${pkgs.lib.makeBinPath [ pkgs.qemu ]}
          '';
        };
      });
      devShells = forAll (pkgs: {
        default = pkgs.mkShell {
          packages = [ pkgs.cargo pkgs.rustc pkgs.clippy pkgs.rustfmt pkgs.qemu pkgs.xorriso ];
        };
      });
    };
}
