//! Before/after tables for every edit operation, over the layouts people
//! actually write: alejandra and nixpkgs-fmt output, one-line sets, comments
//! after values and between entries, tabs, CRLF, dotted paths, inherit,
//! empty sets and quoted names. Each `after` is the whole file, byte for byte.

use pve_fleet::fleet::edit::{self, ErrorKind};

fn set(before: &str, path: &[&str], value: &str) -> String {
    edit::set_attr(before, path, value)
        .unwrap_or_else(|e| panic!("set {path:?} = {value}: {e} ({:?})\n{before}", e.help))
}

fn check_set(cases: &[(&str, &[&str], &str, &str)]) {
    for (before, path, value, after) in cases {
        let got = set(before, path, value);
        assert_eq!(&got, after, "set {path:?} = {value} in\n{before}");
    }
}

const ALEJANDRA: &str = "\
let
  keys = [\"ssh-ed25519 AAAA admin\"];
in {
  _proxmox = {
    host = \"192.168.1.12\";
    node = \"prom\";
  };

  # the web server
  web = {
    hostname = \"web\";
    authorizedKeys = keys;
    proxmox = {
      vmid = 120;
      cores = 2; # small for now
    };
  };
}
";

const NIXPKGS_FMT: &str = "\
let
  keys = [ \"ssh-ed25519 AAAA admin\" ];
in
{
  _proxmox = {
    host = \"192.168.1.12\";
    node = \"prom\";
  };

  web = {
    hostname = \"web\";
    authorizedKeys = keys;
    proxmox = { vmid = 120; cores = 2; };
  };
}
";

#[test]
fn set_replaces_values_in_formatter_styles() {
    check_set(&[
        (
            ALEJANDRA,
            &["web", "proxmox", "cores"],
            "4",
            &ALEJANDRA.replace("cores = 2; # small", "cores = 4; # small"),
        ),
        (
            ALEJANDRA,
            &["web", "hostname"],
            "\"web-1\"",
            &ALEJANDRA.replace("hostname = \"web\"", "hostname = \"web-1\""),
        ),
        (
            ALEJANDRA,
            &["_proxmox", "node"],
            "\"pve2\"",
            &ALEJANDRA.replace("\"prom\"", "\"pve2\""),
        ),
        (
            NIXPKGS_FMT,
            &["web", "proxmox", "cores"],
            "4",
            &NIXPKGS_FMT.replace("cores = 2;", "cores = 4;"),
        ),
        // a value that refers to a let binding
        (
            NIXPKGS_FMT,
            &["web", "proxmox", "tags"],
            "[ \"web\" ]",
            &NIXPKGS_FMT.replace("cores = 2; };", "cores = 2; tags = [ \"web\" ]; };"),
        ),
        (
            ALEJANDRA,
            &["web", "authorizedKeys"],
            "keys ++ [ \"ssh-ed25519 BBBB other\" ]",
            &ALEJANDRA.replace(
                "authorizedKeys = keys;",
                "authorizedKeys = keys ++ [ \"ssh-ed25519 BBBB other\" ];",
            ),
        ),
    ]);
}

#[test]
fn set_adds_attributes_after_the_last_one_keeping_trailing_comments() {
    check_set(&[
        (
            ALEJANDRA,
            &["web", "proxmox", "memory"],
            "4096",
            &ALEJANDRA.replace(
                "cores = 2; # small for now\n",
                "cores = 2; # small for now\n      memory = 4096;\n",
            ),
        ),
        (
            ALEJANDRA,
            &["web", "publicKey"],
            "\"ssh-ed25519 CCCC\"",
            &ALEJANDRA.replace(
                "      cores = 2; # small for now\n    };\n",
                "      cores = 2; # small for now\n    };\n    publicKey = \"ssh-ed25519 CCCC\";\n",
            ),
        ),
        // a missing set is created in the multi-line style of its neighbours
        (
            "{\n  web = {\n    hostname = \"web\";\n  };\n}\n",
            &["web", "proxmox", "cores"],
            "4",
            "{\n  web = {\n    hostname = \"web\";\n    proxmox = {\n      cores = 4;\n    };\n  };\n}\n",
        ),
        // and two levels deep
        (
            "{\n  web = {\n    hostname = \"web\";\n  };\n}\n",
            &["web", "a", "b", "c"],
            "true",
            "{\n  web = {\n    hostname = \"web\";\n    a = {\n      b = {\n        c = true;\n      };\n    };\n  };\n}\n",
        ),
    ]);
}

#[test]
fn set_in_one_line_and_empty_sets() {
    check_set(&[
        (
            "{ web = { cores = 2; }; }",
            &["web", "cores"],
            "4",
            "{ web = { cores = 4; }; }",
        ),
        (
            "{ web = { cores = 2; }; }",
            &["web", "memory"],
            "1024",
            "{ web = { cores = 2; memory = 1024; }; }",
        ),
        (
            "{ web = { cores = 2; }; }",
            &["web", "proxmox", "vmid"],
            "101",
            "{ web = { cores = 2; proxmox = { vmid = 101; }; }; }",
        ),
        (
            "{ web = { }; }",
            &["web", "cores"],
            "1",
            "{ web = { cores = 1; }; }",
        ),
        (
            "{ web = {}; }",
            &["web", "cores"],
            "1",
            "{ web = { cores = 1; }; }",
        ),
        (
            "{\n  web = {\n  };\n}\n",
            &["web", "cores"],
            "1",
            "{\n  web = {\n    cores = 1;\n  };\n}\n",
        ),
    ]);
}

#[test]
fn set_follows_dotted_paths_inherit_and_quoted_names() {
    check_set(&[
        (
            "{\n  web.hostname = \"web\";\n  web.proxmox.cores = 2;\n}\n",
            &["web", "proxmox", "cores"],
            "8",
            "{\n  web.hostname = \"web\";\n  web.proxmox.cores = 8;\n}\n",
        ),
        // new attributes join the dotted lines that share the most of the path
        (
            "{\n  web.proxmox.cores = 2;\n  web.hostname = \"web\";\n}\n",
            &["web", "proxmox", "memory"],
            "512",
            "{\n  web.proxmox.cores = 2;\n  web.proxmox.memory = 512;\n  web.hostname = \"web\";\n}\n",
        ),
        (
            "{\n  web = {\n    proxmox.cores = 2;\n  };\n}\n",
            &["web", "proxmox", "memory"],
            "512",
            "{\n  web = {\n    proxmox.cores = 2;\n    proxmox.memory = 512;\n  };\n}\n",
        ),
        (
            "let k = [ ]; in {\n  web = {\n    inherit k;\n    cores = 1;\n  };\n}\n",
            &["web", "cores"],
            "2",
            "let k = [ ]; in {\n  web = {\n    inherit k;\n    cores = 2;\n  };\n}\n",
        ),
        (
            "{\n  \"my-host\" = {\n    cores = 1;\n  };\n}\n",
            &["my-host", "cores"],
            "2",
            "{\n  \"my-host\" = {\n    cores = 2;\n  };\n}\n",
        ),
        // names that need quotes get them, and only those
        (
            "{\n  web = {\n    cores = 1;\n  };\n}\n",
            &["web", "labels", "app.kubernetes.io/name"],
            "\"web\"",
            "{\n  web = {\n    cores = 1;\n    labels = {\n      \"app.kubernetes.io/name\" = \"web\";\n    };\n  };\n}\n",
        ),
    ]);
}

#[test]
fn set_keeps_tabs_and_crlf() {
    check_set(&[
        (
            "{\n\tweb = {\n\t\tcores = 1;\n\t};\n}\n",
            &["web", "proxmox", "vmid"],
            "100",
            "{\n\tweb = {\n\t\tcores = 1;\n\t\tproxmox = {\n\t\t\tvmid = 100;\n\t\t};\n\t};\n}\n",
        ),
        (
            "{\r\n  web = {\r\n    cores = 1; # one\r\n  };\r\n}\r\n",
            &["web", "proxmox", "vmid"],
            "100",
            "{\r\n  web = {\r\n    cores = 1; # one\r\n    proxmox = {\r\n      vmid = 100;\r\n    };\r\n  };\r\n}\r\n",
        ),
        (
            "{\r\n  web = {\r\n    cores = 1; # one\r\n  };\r\n}\r\n",
            &["web", "cores"],
            "2",
            "{\r\n  web = {\r\n    cores = 2; # one\r\n  };\r\n}\r\n",
        ),
    ]);
}

fn add(before: &str, name: &str, entry: &str) -> String {
    edit::add_host(before, name, entry)
        .unwrap_or_else(|e| panic!("add {name}: {e} ({:?})\n{before}", e.help))
}

const ENTRY: &str = "{\n  hostname = \"new\";\n  proxmox = {\n    vmid = 130;\n  };\n}";

#[test]
fn add_goes_after_the_last_host_indented_like_its_neighbours() {
    let cases: &[(&str, &str)] = &[
        (
            ALEJANDRA,
            "  };\n\n  new = {\n    hostname = \"new\";\n    proxmox = {\n      vmid = 130;\n    };\n  };\n}\n",
        ),
        (
            NIXPKGS_FMT,
            "  };\n\n  new = {\n    hostname = \"new\";\n    proxmox = {\n      vmid = 130;\n    };\n  };\n}\n",
        ),
    ];
    for (before, tail) in cases {
        let got = add(before, "new", ENTRY);
        let keep = &before[..before.len() - "  };\n}\n".len()];
        assert_eq!(got, format!("{keep}{tail}"), "\n{got}");
    }
    // no blank lines between entries: none added
    assert_eq!(
        add(
            "{\n  a = { x = 1; };\n  b = { x = 2; };\n}\n",
            "c",
            "{ x = 3; }"
        ),
        "{\n  a = { x = 1; };\n  b = { x = 2; };\n  c = { x = 3; };\n}\n"
    );
    // unsorted hosts: after the last one, before trailing config
    assert_eq!(
        add("{\n  z = { };\n  a = { };\n  _sops = { };\n}\n", "m", "{ }"),
        "{\n  z = { };\n  a = { };\n  m = { };\n  _sops = { };\n}\n"
    );
    // only configuration so far: after the last entry
    assert_eq!(
        add("{\n  _proxmox = { node = \"a\"; };\n}\n", "web", "{ }"),
        "{\n  _proxmox = { node = \"a\"; };\n  web = { };\n}\n"
    );
}

#[test]
fn add_keeps_sorted_hosts_sorted() {
    let sorted = "{\n  # alpha\n  alpha = { };\n\n  # gamma\n  gamma = { };\n\n  omega = { };\n}\n";
    assert_eq!(
        add(sorted, "beta", "{ }"),
        "{\n  # alpha\n  alpha = { };\n\n  beta = { };\n\n  # gamma\n  gamma = { };\n\n  omega = { };\n}\n"
    );
    assert_eq!(
        add(sorted, "aardvark", "{ }"),
        "{\n  aardvark = { };\n\n  # alpha\n  alpha = { };\n\n  # gamma\n  gamma = { };\n\n  omega = { };\n}\n"
    );
    assert_eq!(
        add(sorted, "zulu", "{ }"),
        "{\n  # alpha\n  alpha = { };\n\n  # gamma\n  gamma = { };\n\n  omega = { };\n\n  zulu = { };\n}\n"
    );
}

#[test]
fn add_into_empty_one_line_tabbed_and_crlf_files() {
    assert_eq!(
        add("{ }\n", "web", "{ x = 1; }"),
        "{\n  web = { x = 1; };\n}\n"
    );
    assert_eq!(add("{}", "web", ENTRY).lines().count(), 8);
    assert_eq!(
        add("{ a = { x = 1; }; }", "b", "{\n  x = 2;\n}"),
        "{ a = { x = 1; }; b = { x = 2; }; }"
    );
    assert_eq!(
        add("{\n\ta = {\n\t\tx = 1;\n\t};\n}\n", "b", "{\n  x = 2;\n  y = {\n    z = 3;\n  };\n}"),
        "{\n\ta = {\n\t\tx = 1;\n\t};\n\tb = {\n\t\tx = 2;\n\t\ty = {\n\t\t\tz = 3;\n\t\t};\n\t};\n}\n"
    );
    assert_eq!(
        add(
            "{\r\n  a = {\r\n    x = 1;\r\n  };\r\n}\r\n",
            "b",
            "{\n  x = 2;\n}"
        ),
        "{\r\n  a = {\r\n    x = 1;\r\n  };\r\n  b = {\r\n    x = 2;\r\n  };\r\n}\r\n"
    );
    // names that are not identifiers are quoted
    assert_eq!(
        add("{\n  a = { };\n}\n", "1st", "{ }"),
        "{\n  a = { };\n  \"1st\" = { };\n}\n"
    );
    assert_eq!(
        add("{\n  a = { };\n}\n", "my-host", "{ }"),
        "{\n  a = { };\n  my-host = { };\n}\n"
    );
}

fn rm(before: &str, name: &str) -> String {
    edit::remove_host(before, name)
        .unwrap_or_else(|e| panic!("rm {name}: {e} ({:?})\n{before}", e.help))
}

#[test]
fn remove_takes_leading_comments_and_one_blank_line() {
    let three = "{\n  # section: VMs\n\n  # a is first\n  a = {\n    x = 1;\n  };\n\n  # b,\n  # two lines\n  b = { x = 2; }; # trailing\n\n  c = { x = 3; };\n}\n";
    assert_eq!(
        rm(three, "a"),
        "{\n  # section: VMs\n\n  # b,\n  # two lines\n  b = { x = 2; }; # trailing\n\n  c = { x = 3; };\n}\n"
    );
    assert_eq!(
        rm(three, "b"),
        "{\n  # section: VMs\n\n  # a is first\n  a = {\n    x = 1;\n  };\n\n  c = { x = 3; };\n}\n"
    );
    assert_eq!(
        rm(three, "c"),
        "{\n  # section: VMs\n\n  # a is first\n  a = {\n    x = 1;\n  };\n\n  # b,\n  # two lines\n  b = { x = 2; }; # trailing\n}\n"
    );
    assert_eq!(rm(ALEJANDRA, "web"), "let\n  keys = [\"ssh-ed25519 AAAA admin\"];\nin {\n  _proxmox = {\n    host = \"192.168.1.12\";\n    node = \"prom\";\n  };\n}\n");
}

#[test]
fn remove_in_one_line_dotted_quoted_crlf_and_tabbed_files() {
    assert_eq!(
        rm("{ a = { }; b = { }; c = { }; }", "b"),
        "{ a = { }; c = { }; }"
    );
    assert_eq!(rm("{ a = { }; }", "a"), "{ }");
    assert_eq!(
        rm("{\n  a.x = 1;\n  b.x = 2;\n  a.y = 3;\n}\n", "a"),
        "{\n  b.x = 2;\n}\n"
    );
    assert_eq!(
        rm("{\n  \"my-host\" = { };\n  b = { };\n}\n", "my-host"),
        "{\n  b = { };\n}\n"
    );
    assert_eq!(
        rm("{\r\n  # a\r\n  a = { };\r\n\r\n  b = { };\r\n}\r\n", "a"),
        "{\r\n  b = { };\r\n}\r\n"
    );
    assert_eq!(
        rm("{\n\ta = { };\n\n\tb = { };\n}\n", "b"),
        "{\n\ta = { };\n}\n"
    );
}

#[test]
fn rename_changes_only_the_name() {
    assert_eq!(
        edit::rename_host("{\n  a = { hostname = \"a\"; }; # the a\n}\n", "a", "b")
            .expect("rename"),
        "{\n  b = { hostname = \"a\"; }; # the a\n}\n"
    );
    assert_eq!(
        edit::rename_host("{\n  a.x = 1;\n  a.y = 2;\n}\n", "a", "my-b").expect("rename"),
        "{\n  my-b.x = 1;\n  my-b.y = 2;\n}\n"
    );
}

fn err(r: Result<String, edit::EditError>) -> edit::EditError {
    match r {
        Ok(t) => panic!("expected an error, got\n{t}"),
        Err(e) => e,
    }
}

#[test]
fn bad_input_is_refused_with_a_reason() {
    let e = err(edit::set_attr(ALEJANDRA, &["wev", "cores"], "1"));
    assert_eq!(e.kind, ErrorKind::NoSuchHost);
    assert!(e.help.as_deref().unwrap_or("").contains("`web`"), "{e:?}");

    let e = err(edit::set_attr(ALEJANDRA, &["web", "hostname", "x"], "1"));
    assert_eq!(e.kind, ErrorKind::NotASet);
    assert!(
        e.message.contains("`web.hostname` is a string"),
        "{}",
        e.message
    );

    for bad in ["1 +", "{ a = 1 }", "\"open", "", "a b c ="] {
        let e = err(edit::set_attr(ALEJANDRA, &["web", "x"], bad));
        assert_eq!(e.kind, ErrorKind::BadValue, "{bad}: {e}");
    }
    // parses, but does not evaluate in the file
    let e = err(edit::set_attr(ALEJANDRA, &["web", "x"], "undefinedName"));
    assert_eq!(e.kind, ErrorKind::BadValue, "{e}");

    let e = err(edit::set_attr("{ web = { x = 1; ", &["web", "x"], "2"));
    assert_eq!(e.kind, ErrorKind::Unparsable);
    assert!(e.span.is_some());

    let e = err(edit::remove_host(ALEJANDRA, "nope"));
    assert_eq!(e.kind, ErrorKind::NoSuchHost);
    let e = err(edit::remove_host(ALEJANDRA, "_proxmox"));
    assert_eq!(e.kind, ErrorKind::NoSuchHost);
    let e = err(edit::add_host(ALEJANDRA, "web", "{ }"));
    assert_eq!(e.kind, ErrorKind::HostExists);
    let e = err(edit::add_host(ALEJANDRA, "x", "{ oops"));
    assert_eq!(e.kind, ErrorKind::BadValue);
}

#[test]
fn unsupported_shapes_are_refused_by_name() {
    for (text, what) in [
        (
            "let a = { x = { }; }; b = { y = { }; }; in a // b",
            "none of the sets merged with `//`",
        ),
        ("{ pkgs }: { a = { }; }", "a function"),
        ("with { }; { a = { }; }", "`with`"),
    ] {
        let e = err(edit::add_host(text, "c", "{ }"));
        // a function does not evaluate at all; the others are refused by shape
        assert!(
            matches!(e.kind, ErrorKind::Unsupported | ErrorKind::Unparsable),
            "{text}: {e}"
        );
        if e.kind == ErrorKind::Unsupported {
            assert!(e.message.contains(what), "{text}: {}", e.message);
        }
    }
    // a host whose set is not written literally
    let e = err(edit::set_attr(
        "let s = { x = 1; }; in { web = s; }",
        &["web", "x"],
        "2",
    ));
    assert_eq!(e.kind, ErrorKind::Unsupported);
    // an inherited attribute
    let e = err(edit::set_attr(
        "let k = 1; in { web = { inherit k; }; }",
        &["web", "k"],
        "2",
    ));
    assert_eq!(e.kind, ErrorKind::Unsupported);
}

#[test]
fn an_edit_that_would_change_more_than_asked_is_refused() {
    // `b` follows `a` through `rec`: changing `a.x` would change `b.y` too
    let text = "rec {\n  a = { x = 1; };\n  b = { y = a.x; };\n}\n";
    let e = err(edit::set_attr(text, &["a", "x"], "2"));
    assert_eq!(e.kind, ErrorKind::Verify);
    assert!(e.message.contains("`b.y` would change"), "{}", e.message);
    // same value: nothing else changes, so it is allowed
    assert_eq!(set(text, &["a", "x"], "1"), text);
}

#[test]
fn sets_merged_with_update_are_edited_where_nix_takes_the_value() {
    let text = "let\n  base = { old = { x = 0; }; };\nin\nbase // {\n  a = { x = 1; };\n} // {\n  a = { x = 2; };\n  b = { x = 3; };\n}\n";
    // `a` comes from the last set: that is the one edited
    assert_eq!(
        set(text, &["a", "x"], "5"),
        text.replace("a = { x = 2; }", "a = { x = 5; }")
    );
    // new hosts go into the last set
    assert_eq!(
        add(text, "c", "{ }"),
        text.replace("  b = { x = 3; };\n", "  b = { x = 3; };\n  c = { };\n")
    );
    // removing takes every definition
    assert_eq!(
        rm(text, "a"),
        "let\n  base = { old = { x = 0; }; };\nin\nbase // {\n} // {\n  b = { x = 3; };\n}\n"
    );
    // a host from the merged-in expression is not editable here
    let e = err(edit::set_attr(text, &["old", "x"], "1"));
    assert_eq!(e.kind, ErrorKind::Unsupported);
    assert!(e.message.contains("merged expression"), "{}", e.message);
    // removing it from one set while another still defines it is refused
    let shadow = "{ a = { x = 1; }; } // { a = { x = 2; }; }";
    assert_eq!(rm(shadow, "a"), "{ } // { }");
    let half = "let base = { a = { x = 1; }; }; in base // { a = { x = 2; }; }";
    let e = err(edit::remove_host(half, "a"));
    assert_eq!(e.kind, ErrorKind::Verify, "{e}");
}

#[test]
fn multi_line_values_are_indented_to_their_place() {
    let t = "{\r\n\tweb = {\r\n\t\tcores = 1;\r\n\t};\r\n}\r\n";
    assert_eq!(
        set(t, &["web", "virtiofs"], "[\n  { mapping = \"a\"; }\n  { mapping = \"b\"; }\n]"),
        "{\r\n\tweb = {\r\n\t\tcores = 1;\r\n\t\tvirtiofs = [\r\n\t\t\t{ mapping = \"a\"; }\r\n\t\t\t{ mapping = \"b\"; }\r\n\t\t];\r\n\t};\r\n}\r\n"
    );
    let t = "{\n  web = {\n    cores = 1;\n  };\n}\n";
    assert_eq!(
        set(t, &["web", "cores"], "{\n  a = 1;\n}"),
        "{\n  web = {\n    cores = {\n      a = 1;\n    };\n  };\n}\n"
    );
    // a string spanning lines goes in exactly as written
    assert_eq!(
        set(t, &["web", "description"], "''\n  two\n  lines\n''"),
        "{\n  web = {\n    cores = 1;\n    description = ''\n  two\n  lines\n'';\n  };\n}\n"
    );
}
