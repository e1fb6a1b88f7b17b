// Refine module: SAROS + BOA + TotalSegmentator → nine-class data set (issue 8)
