from semgkit.cli import main

raise SystemExit(main())
