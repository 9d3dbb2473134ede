package meta

// AfterCommit makes s run fn after each transaction it commits (a test's
// way to cancel a context between a commit and what follows it).
func AfterCommit(s Store, fn func()) { s.(*sqlStore).afterCommit = fn }
