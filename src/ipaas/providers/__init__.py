"""Git providers: validate repos and branches, list repos, clone (generic git, GitHub)."""
