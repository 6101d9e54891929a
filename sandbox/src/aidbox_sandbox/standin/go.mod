module aidbox-operator.local/standin

go 1.24
