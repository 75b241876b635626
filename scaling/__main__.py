from scaling.app.cli import main

raise SystemExit(main())
