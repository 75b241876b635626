from scaling.cli import main

raise SystemExit(main())
