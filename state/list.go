package state

import "context"

// ListAll reads every object q selects, page by page (q.Limit sets the
// page size; 0 reads 5,000 a page), for callers that need the whole set.
func ListAll(ctx context.Context, s Store, q ObjectQuery) ([]*Object, error) {
	if q.Limit == 0 {
		q.Limit = 5000
	}
	var all []*Object
	for {
		page, err := s.ListObjects(ctx, q)
		if err != nil {
			return nil, err
		}
		all = append(all, page.Objects...)
		if page.Continue == "" {
			return all, nil
		}
		q.Continue = page.Continue
	}
}
