module mailgate/bench

go 1.26.8
