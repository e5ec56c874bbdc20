# The flake tests/nix_flake.rs builds with a real nix. It needs no input (no nixpkgs: the test
# machines are offline): each package is a bare `derivation` whose builder is /bin/sh. The test
# fills in @SYSTEM@ (e.g. x86_64-linux) and @ISO@ (the fixture ISO's real path) and writes the
# result to a temp folder as its flake.nix.
#
# The test runs nix with `sandbox = false`: Debian's nix has no sandbox shell (its
# `sandbox-paths` is empty), so inside a sandbox not even /bin/sh exists, and a 100 MB binary ISO
# cannot be copied with shell builtins anyway (no `mkdir`, no NUL bytes in `read`). The builders
# therefore use the host's /bin/mkdir and /bin/cp and read the fixture from its host path; the
# ISO's path carries its content hash (fixtures' cache names), so a new image is a new build.
{
  description = "bootaudit test: ISOs built by nix without nixpkgs";

  outputs = { self }: {
    packages."@SYSTEM@" = {
      # The fixture ISO in $out/iso/, where a NixOS isoImage puts its image.
      iso = derivation {
        name = "bootaudit-test-iso";
        system = "@SYSTEM@";
        builder = "/bin/sh";
        args = [ "-c" ''/bin/mkdir -p "$out/iso" && /bin/cp "$image" "$out/iso/healthy.iso"'' ];
        image = "@ISO@";
      };
      # A build that fails: iso.build must fail with nix's error, and nothing boots.
      broken = derivation {
        name = "bootaudit-test-broken";
        system = "@SYSTEM@";
        builder = "/bin/sh";
        args = [ "-c" "echo 'bootaudit test: this build fails on purpose' >&2; exit 1" ];
      };
      # A build that succeeds without an ISO in its output.
      noiso = derivation {
        name = "bootaudit-test-noiso";
        system = "@SYSTEM@";
        builder = "/bin/sh";
        args = [ "-c" ''/bin/mkdir -p "$out" && echo 'no image here' > "$out/README"'' ];
      };
    };
  };
}
