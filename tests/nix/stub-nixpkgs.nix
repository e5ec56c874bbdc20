# A stand-in for nixpkgs, so tests/nix_flake.rs can evaluate the project's own flake.nix offline
# (`--override-input nixpkgs path:<this, as a flake>`). It offers exactly what flake.nix uses;
# its builders return plain attribute sets of what flake.nix passed them, which the test reads
# back with `nix eval --json`. When flake.nix uses more of nixpkgs, add it here.
{
  description = "bootaudit test: a stub of the nixpkgs attributes flake.nix uses";

  outputs = { self }:
    let
      pkgs = {
        rustPlatform.buildRustPackage = a: {
          inherit (a) pname version doCheck postInstall;
          lockFileExists = builtins.pathExists a.cargoLock.lockFile;
          srcIsTheFlake = builtins.isAttrs a.src && a.src ? outPath;
          nativeBuildInputs = a.nativeBuildInputs;
        };
        mkShell = a: { inherit (a) packages; };
        lib.makeBinPath = ps: builtins.concatStringsSep ":" (map (p: "${p}/bin") ps);
        makeWrapper = "stub-makeWrapper";
        qemu = "/stub/qemu";
        cargo = "stub-cargo";
        rustc = "stub-rustc";
        clippy = "stub-clippy";
        rustfmt = "stub-rustfmt";
        xorriso = "stub-xorriso";
      };
    in {
      lib.genAttrs = names: f: builtins.listToAttrs (map (n: { name = n; value = f n; }) names);
      legacyPackages = builtins.listToAttrs (map (s: { name = s; value = pkgs; })
        [ "x86_64-linux" "aarch64-linux" "x86_64-darwin" "aarch64-darwin" ]);
    };
}
